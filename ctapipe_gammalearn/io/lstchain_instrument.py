"""The `~ctapipe.instrument.SubarrayDescription` of an lstchain DL1 file.

lstchain writes the subarray with the ctapipe of its release, in three layouts
(``/configuration/instrument/...``):

- lstchain 0.7 and 0.8 (ctapipe 0.10, 0.11): astropy-written tables; ``layout``
  without ``camera_index``/``optics_index``, cameras in ``geometry_<camera name>``,
  optics table version 2.0 (``description``, ``num_mirrors``, equivalent focal length only);
- lstchain 0.9 (ctapipe 0.12): the same tables with ``camera_index``/``optics_index``
  and cameras in ``geometry_<index>``;
- lstchain 0.10 (ctapipe 0.19): ctapipe-written tables (layout 2.0, optics 4.0 with the
  effective focal length, readout 3.0), the versions ctapipe 0.28 writes too.

ctapipe 0.28 reads none of the first two (astropy tables need h5py, and the optics
table version 2.0 is no longer supported), so all three are rebuilt here from the tables.
"""

import astropy.units as u
import numpy as np
import tables
from astropy.coordinates import EarthLocation
from ctapipe.coordinates import CameraFrame
from ctapipe.instrument import (
    CameraDescription,
    CameraGeometry,
    CameraReadout,
    FocalLengthKind,
    OpticsDescription,
    ReflectorShape,
    SizeType,
    SubarrayDescription,
    TelescopeDescription,
)

from .hdf5_tables import read_config_table

__all__ = ["INSTRUMENT_GROUP", "LST_SITE", "read_lstchain_subarray"]

#: lstchain files do not store the site: every one is LST at CTAO-North. This is the
#: reference location that ctapipe_io_lst's LSTEventSource gives (``REFERENCE_LOCATION``,
#: the area-weighted mean position of LST-1 and the MAGIC telescopes, MC observation level)
LST_SITE = EarthLocation(lon=-17.890879 * u.deg, lat=28.761579 * u.deg, height=2199 * u.m)

INSTRUMENT_GROUP = "/configuration/instrument"
LAYOUT_TABLE = f"{INSTRUMENT_GROUP}/subarray/layout"
OPTICS_TABLE = f"{INSTRUMENT_GROUP}/telescope/optics"
CAMERA_GROUP = f"{INSTRUMENT_GROUP}/telescope/camera"


def read_lstchain_subarray(h5file: tables.File, focal_length_choice="EFFECTIVE") -> SubarrayDescription:
    """The subarray of an open lstchain DL1 file, from its tables in any of the three layouts.

    Camera frames get the effective focal length where the file has one and
    ``focal_length_choice`` is EFFECTIVE, else the equivalent focal length
    (lstchain 0.7 to 0.9 store only that one; lstchain itself converts with it).
    The site is the layout's ``reference_itrs_*`` (ctapipe >= 0.19 writes it), else `LST_SITE`.
    """
    choice = focal_length_choice
    if isinstance(choice, str):
        choice = FocalLengthKind[choice.upper()]
    return _from_tables(h5file, choice)


def _from_tables(h5file, choice):
    layout = read_config_table(h5file, LAYOUT_TABLE)
    optics_table = read_config_table(h5file, OPTICS_TABLE)
    optics = [_optics(row) for row in optics_table]
    if "optics_index" in layout.colnames:
        optics_index = [int(i) for i in layout["optics_index"]]
    else:  # by description, as ctapipe did before 0.12
        descriptions = [str(d) for d in optics_table["description"]]
        optics_index = [descriptions.index(str(d)) for d in layout["tel_description"]]
    camera_keys = layout["camera_index"] if "camera_index" in layout.colnames else layout["camera_type"]
    cameras = {}
    telescopes = {}
    for row, key, index in zip(layout, camera_keys, optics_index):
        key = str(key)
        if key not in cameras:
            cameras[key] = _camera(h5file, key)
        optic = optics[index]
        focal_length = optic.equivalent_focal_length
        if choice is FocalLengthKind.EFFECTIVE and np.isfinite(optic.effective_focal_length.value):
            focal_length = optic.effective_focal_length
        camera = cameras[key]
        geometry = CameraGeometry(
            name=camera.geometry.name,
            pix_id=camera.geometry.pix_id,
            pix_x=camera.geometry.pix_x,
            pix_y=camera.geometry.pix_y,
            pix_area=camera.geometry.pix_area,
            pix_type=camera.geometry.pix_type,
            pix_rotation=camera.geometry.pix_rotation,
            cam_rotation=camera.geometry.cam_rotation,
            frame=CameraFrame(focal_length=focal_length),
        )
        telescopes[int(row["tel_id"])] = TelescopeDescription(
            name=str(row["name"]),
            optics=optic,
            camera=CameraDescription(name=camera.name, geometry=geometry, readout=camera.readout),
        )
    xyz = u.Quantity([layout[c].quantity.to(u.m) for c in ("pos_x", "pos_y", "pos_z")]).T
    positions = {int(tel_id): position for tel_id, position in zip(layout["tel_id"], xyz)}
    return SubarrayDescription(
        name=str(layout.meta.get("SUBARRAY", "lstchain subarray")),
        tel_positions=positions,
        tel_descriptions=telescopes,
        reference_location=_site(layout.meta),
    )


def _site(meta):
    for keys in (("reference_itrs_x", "reference_itrs_y", "reference_itrs_z"), ("OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z")):
        if all(key in meta for key in keys):
            return EarthLocation.from_geocentric(*(meta[key] for key in keys), unit=u.m)
    return LST_SITE


def _optics(row):
    """OpticsDescription from a version-2.0 optics row (no effective focal length: NaN)."""
    size_type = str(row["type"]) if "type" in row.colnames else str(row["size_type"])
    return OpticsDescription(
        name=str(row["name"]) if "name" in row.colnames else str(row["optics_name"]),
        size_type=SizeType(size_type) if size_type in SizeType.__members__ else SizeType.UNKNOWN,
        n_mirrors=int(row["num_mirrors"]) if "num_mirrors" in row.colnames else int(row["n_mirrors"]),
        equivalent_focal_length=u.Quantity(row["equivalent_focal_length"], u.m),
        effective_focal_length=u.Quantity(row["effective_focal_length"], u.m)
        if "effective_focal_length" in row.colnames
        else np.nan * u.m,
        mirror_area=u.Quantity(row["mirror_area"], u.m**2),
        n_mirror_tiles=int(row["num_mirror_tiles" if "num_mirror_tiles" in row.colnames else "n_mirror_tiles"]),
        reflector_shape=_reflector_shape(row),
    )


def _reflector_shape(row):
    value = str(row["reflector_shape"]) if "reflector_shape" in row.colnames else ""
    return ReflectorShape(value) if value in {s.value for s in ReflectorShape} else ReflectorShape.UNKNOWN


def _camera(h5file, key):
    geometry = CameraGeometry.from_table(read_config_table(h5file, f"{CAMERA_GROUP}/geometry_{key}"))
    readout_table = read_config_table(h5file, f"{CAMERA_GROUP}/readout_{key}")
    meta = readout_table.meta
    n_channels = int(meta.get("NCHAN", 1))
    readout = CameraReadout(
        name=str(meta.get("CAM_ID", geometry.name)),
        sampling_rate=u.Quantity(meta["SAMPFREQ"], u.GHz),
        reference_pulse_shape=np.array([readout_table[f"reference_pulse_shape_channel{i}"] for i in range(n_channels)]),
        reference_pulse_sample_width=u.Quantity(meta.get("REFWIDTH", meta.get("REF_WIDTH")), u.ns),
        n_channels=n_channels,
        n_pixels=int(meta.get("NPIXELS", geometry.n_pixels)),
        n_samples=int(meta.get("NSAMPLES", 0)),
    )
    return CameraDescription(name=geometry.name, geometry=geometry, readout=readout)
