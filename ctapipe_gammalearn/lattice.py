"""CameraGeometry -> lattice: what an exact convolution on the camera needs.

numpy only: the runtime imports this module (for the fingerprint) without torch.
"""

import hashlib

import astropy.units as u
import numpy as np

__all__ = ["geometry_fingerprint"]


def geometry_fingerprint(geometry) -> str:
    """Short stable hash of the pixel layout (pixel order and positions).

    Positions are rounded to 1 mm (camera frame) or 1e-4 deg (telescope
    frame), so float noise between readers of the same camera does not matter.
    """
    x, y = geometry.pix_x, geometry.pix_y
    if x.unit.physical_type == "length":
        xs = np.round(x.to_value(u.m) * 1e3)
        ys = np.round(y.to_value(u.m) * 1e3)
        tag = b"m"
    else:
        xs = np.round(x.to_value(u.deg) * 1e4)
        ys = np.round(y.to_value(u.deg) * 1e4)
        tag = b"deg"
    digest = hashlib.sha256()
    digest.update(tag)
    digest.update(np.int64(len(xs)).tobytes())
    digest.update(xs.astype(np.int64).tobytes())
    digest.update(ys.astype(np.int64).tobytes())
    return digest.hexdigest()[:16]
