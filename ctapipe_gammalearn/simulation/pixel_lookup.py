"""Fast direction -> pixel lookup: a fine grid over the field of view holding the nearest pixel id."""

import astropy.units as u
import numpy as np
from ctapipe.coordinates import TelescopeFrame
from scipy.spatial import cKDTree

__all__ = ["PixelLookup"]


class PixelLookup:
    """Nearest-pixel map on a regular (fov_lon, fov_lat) grid, -1 outside the camera.

    The nearest pixel centre is the pixel containing the point (Voronoi cells of a
    hexagonal or square lattice are the pixels), up to the outer edge where a distance
    cut stops the map.
    """

    def __init__(self, geometry, oversampling=8):
        tel_geom = geometry.transform_to(TelescopeFrame()) if geometry.frame is not None else geometry
        self.pix_x = tel_geom.pix_x.to_value(u.deg)
        self.pix_y = tel_geom.pix_y.to_value(u.deg)
        self.n_pixels = len(self.pix_x)
        pitch = float(np.median(np.sqrt(tel_geom.pix_area.to_value(u.deg**2))))
        self.pixel_pitch = pitch
        self.step = pitch / oversampling
        margin = pitch
        self.x0 = self.pix_x.min() - margin
        self.y0 = self.pix_y.min() - margin
        nx = int(np.ceil((self.pix_x.max() + margin - self.x0) / self.step)) + 1
        ny = int(np.ceil((self.pix_y.max() + margin - self.y0) / self.step)) + 1
        gx = self.x0 + (np.arange(nx) + 0.5) * self.step
        gy = self.y0 + (np.arange(ny) + 0.5) * self.step
        xx, yy = np.meshgrid(gx, gy, indexing="ij")
        distance, nearest = cKDTree(np.column_stack([self.pix_x, self.pix_y])).query(
            np.column_stack([xx.ravel(), yy.ravel()])
        )
        nearest = np.where(distance <= 0.62 * pitch, nearest, -1)
        self.grid = nearest.reshape(nx, ny).astype(np.int32)
        self.radius = float(np.max(np.hypot(self.pix_x, self.pix_y)) + pitch)

    def __call__(self, fov_lon, fov_lat):
        """Pixel index of each (fov_lon, fov_lat) in deg, -1 where no pixel."""
        ix = ((fov_lon - self.x0) / self.step).astype(np.int64)
        iy = ((fov_lat - self.y0) / self.step).astype(np.int64)
        inside = (ix >= 0) & (ix < self.grid.shape[0]) & (iy >= 0) & (iy < self.grid.shape[1])
        out = np.full(len(ix), -1, dtype=np.int32)
        out[inside] = self.grid[ix[inside], iy[inside]]
        return out
