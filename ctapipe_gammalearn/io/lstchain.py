"""lstchain DL1 files as the telescope-event tables ctapipe's `~ctapipe.io.TableLoader` gives.

lstchain (the LST-1 analysis chain) writes one table per telescope type, e.g.
``/dl1/event/telescope/parameters/LST_LSTCam`` and ``.../image/LST_LSTCam``, one
row per telescope event, in the same order, with its own column names and
conventions (lstchain 0.7 to 0.10 alike):

- ``x``, ``y``, ``r`` in metres in the camera frame; ``length``, ``width`` (and
  their uncertainties) already in degrees, as ``arctan(metres / f_eq)`` with the
  equivalent focal length; ``phi``, ``psi`` in radians; ``time_gradient`` in ns/m
  along the camera-frame axis ``psi``; ``intercept`` in ns;
- pointing ``alt_tel``, ``az_tel`` in radians per event; times ``trigger_time`` /
  ``dragon_time`` as UNIX seconds (UTC);
- ``leakage_pixels_width_1/2`` as the fraction of all camera pixels (ctapipe before
  0.21; ctapipe now divides by the pixels surviving the cleaning, ``n_pixels``);
- simulation truth ``mc_energy`` (TeV), ``mc_alt``, ``mc_az`` (rad), ``mc_core_x``,
  ``mc_core_y``, ``mc_h_first_int`` (m), ``mc_x_max`` (g/cm²), ``mc_type`` (the
  CORSIKA primary id, as ctapipe's ``true_shower_primary_id``).

The unit attributes lstchain writes are not always right (0.7 labels ``x`` in m
but nothing in observed files), so the conventions above are applied by name.
`LSTChainDL1File` turns the rows into ctapipe's columns: the Hillas parameters
in the telescope frame (deg), as `ctapipe.image.ImageProcessor` computes them, with
``fov_lat = x / f`` and ``fov_lon = y / f`` (ctapipe's camera-to-telescope
transformation, with the focal length of the subarray's camera frame).
"""

import astropy.units as u
import numpy as np
import tables
from astropy.table import QTable
from astropy.time import Time
from ctapipe.core import Component, ToolConfigurationError
from ctapipe.core.traits import UseEnum
from ctapipe.instrument import FocalLengthKind

from .lstchain_instrument import read_lstchain_subarray

__all__ = [
    "IMAGE_GROUP",
    "PARAMETERS_GROUP",
    "MONITORING_GROUP",
    "NO_IMAGES_HINT",
    "LSTChainDL1Error",
    "LSTChainDL1File",
    "is_lstchain_dl1",
]

IMAGE_GROUP = "/dl1/event/telescope/image"
PARAMETERS_GROUP = "/dl1/event/telescope/parameters"
MONITORING_GROUP = "/dl1/event/telescope/monitoring"
#: how to get images into an lstchain file
NO_IMAGES_HINT = (
    "lstchain writes them unless --no-image is given to lstchain_dl1ab or lstchain_merge_hdf5_files: "
    "rerun those without --no-image"
)

#: lstchain parameter -> ctapipe parameter, copied as they are
_SAME = {
    "intensity": "hillas_intensity",
    "kurtosis": "hillas_kurtosis",
    "intercept": "timing_intercept",
    "leakage_intensity_width_1": "leakage_intensity_width_1",
    "leakage_intensity_width_2": "leakage_intensity_width_2",
    "concentration_cog": "concentration_cog",
    "concentration_core": "concentration_core",
    "concentration_pixel": "concentration_pixel",
    "n_pixels": "morphology_n_pixels",
    "n_islands": "morphology_n_islands",
    "event_type": "event_type",
}
#: lstchain angular sizes (deg via the equivalent focal length) -> ctapipe
_SIZES = {
    "length": "hillas_length",
    "width": "hillas_width",
    "length_uncertainty": "hillas_length_uncertainty",
    "width_uncertainty": "hillas_width_uncertainty",
}
#: lstchain truth column -> (ctapipe column, unit stored by lstchain, unit given)
_TRUTH = {
    "mc_energy": ("true_energy", u.TeV, u.TeV),
    "mc_alt": ("true_alt", u.rad, u.deg),
    "mc_az": ("true_az", u.rad, u.deg),
    "mc_core_x": ("true_core_x", u.m, u.m),
    "mc_core_y": ("true_core_y", u.m, u.m),
    "mc_h_first_int": ("true_h_first_int", u.m, u.m),
    "mc_x_max": ("true_x_max", u.g / u.cm**2, u.g / u.cm**2),
}
_KEYS = ("obs_id", "event_id", "tel_id")


class LSTChainDL1Error(ToolConfigurationError):
    """An lstchain DL1 file that cannot be read as asked; the message names the file."""


def is_lstchain_dl1(h5file: tables.File) -> bool:
    """Whether an open HDF5 file is lstchain DL1: per-type parameter tables, no ctapipe layout."""
    if PARAMETERS_GROUP not in h5file:
        return False
    group = h5file.get_node(PARAMETERS_GROUP)
    return any(isinstance(node, tables.Table) and "intensity" in node.colnames for node in group._v_children.values())


class LSTChainDL1File(Component):
    """An open lstchain DL1 file, read in ctapipe's column names and units.

    ``LSTChainDL1File(path)``, or with ``parent``/``config`` as any ctapipe Component;
    a context manager (closes the file).
    """

    focal_length_choice = UseEnum(
        FocalLengthKind,
        default_value=FocalLengthKind.EFFECTIVE,
        help=(
            "focal length of the camera frames, hence of the telescope-frame parameters;"
            " EFFECTIVE falls back to EQUIVALENT where the file has none (lstchain 0.7 to 0.9)"
        ),
    ).tag(config=True)

    def __init__(self, path, config=None, parent=None, **kwargs):
        super().__init__(config=config, parent=parent, **kwargs)
        self.path = path
        try:
            self.h5file = tables.open_file(path, "r")
        except (OSError, tables.HDF5ExtError) as err:
            raise LSTChainDL1Error(f"{path}: not a readable HDF5 file ({err})") from None
        try:
            if not is_lstchain_dl1(self.h5file):
                raise LSTChainDL1Error(f"{path}: not an lstchain DL1 file (no {PARAMETERS_GROUP}/<type> table)")
            self.subarray = read_lstchain_subarray(self.h5file, self.focal_length_choice)
        except Exception:
            self.h5file.close()
            raise
        attrs = self.h5file.root._v_attrs
        #: lstchain version that wrote the file, where recorded (not in every observed file)
        self.lstchain_version = str(attrs["LSTCHAIN_VERSION"]) if "LSTCHAIN_VERSION" in attrs else None
        # lstchain names its tables str(TelescopeDescription) without the size type
        self._types = {str(t).split("_", 1)[1]: str(t) for t in self.subarray.telescope_types}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.h5file.close()

    def _parameters_node(self, name):
        return self.h5file.get_node(f"{PARAMETERS_GROUP}/{name}")

    @property
    def table_names(self) -> list:
        """lstchain per-type table names (``LST_LSTCam``) with telescope events."""
        group = self.h5file.get_node(PARAMETERS_GROUP)
        return sorted(n for n, node in group._v_children.items() if isinstance(node, tables.Table) and node.nrows > 0)

    def telescope_type(self, table_name) -> str:
        """``str(TelescopeDescription)`` of an lstchain table (``LST_LSTCam`` -> ``LST_LST_LSTCam``)."""
        if table_name in self._types:
            return self._types[table_name]
        tel_ids = np.unique(self._parameters_node(table_name).col("tel_id"))
        return str(self.subarray.tel[int(tel_ids[0])])

    def table_name(self, telescope_type) -> str:
        for name in self.table_names:
            if self.telescope_type(name) == str(telescope_type):
                return name
        present = ", ".join(self.telescope_type(n) for n in self.table_names)
        raise LSTChainDL1Error(f"{self.path}: no {telescope_type} events (has {present or 'none'})")

    @property
    def tel_ids(self) -> list:
        """Telescopes with events (lstchain's subarray lists the whole production's)."""
        ids = set()
        for name in self.table_names:
            ids.update(int(t) for t in np.unique(self._parameters_node(name).col("tel_id")))
        return sorted(ids)

    @property
    def has_images(self) -> bool:
        return all(f"{IMAGE_GROUP}/{name}" in self.h5file for name in self.table_names) and bool(self.table_names)

    @property
    def is_simulation(self) -> bool:
        return bool(self.table_names) and "mc_energy" in self._parameters_node(self.table_names[0]).colnames

    def n_events(self, telescope_type) -> int:
        return self._parameters_node(self.table_name(telescope_type)).nrows

    def read(self, telescope_type, start=None, stop=None, images=True, simulated=True) -> QTable:
        """Telescope events ``start:stop`` of one telescope type with ctapipe's columns.

        ``obs_id, event_id, tel_id``, ``time``, ``event_type``, the DL1 parameters
        (``hillas_*``, ``timing_*``, ``leakage_*``, ``concentration_*``,
        ``morphology_*``), ``telescope_pointing_altitude/azimuth``, the telescope
        position ``pos_x/y/z``, with ``images`` also ``image`` and ``peak_time``
        (float32), and in simulations with ``simulated`` the ``true_*`` shower columns.
        """
        name = self.table_name(telescope_type)
        params = self._parameters_node(name).read(start=start, stop=stop)
        table = QTable({key: params[key].astype(np.int64 if key != "tel_id" else np.int16) for key in _KEYS})
        table["time"] = self._times(params)
        self._add_parameters(table, params)
        table["telescope_pointing_altitude"] = u.Quantity(params["alt_tel"], u.rad).to(u.deg)
        table["telescope_pointing_azimuth"] = u.Quantity(params["az_tel"], u.rad).to(u.deg)
        index = self.subarray.tel_ids_to_indices(np.asarray(table["tel_id"]))
        for axis in ("x", "y", "z"):
            table[f"pos_{axis}"] = getattr(self.subarray.tel_coords, axis)[index].to(u.m)
        if simulated and self.is_simulation:
            for column, (ctapipe_name, stored, given) in _TRUTH.items():
                if column in params.dtype.names:
                    table[ctapipe_name] = u.Quantity(params[column], stored).to(given)
            table["true_shower_primary_id"] = params["mc_type"].astype(np.int64)
        if images:
            self._add_images(table, name, start, stop)
        return table

    def iter_chunks(self, telescope_type, chunk_size, **kwargs):
        """`read` in chunks of ``chunk_size`` telescope events."""
        n = self.n_events(telescope_type)
        for start in range(0, n, chunk_size):
            yield self.read(telescope_type, start, min(start + chunk_size, n), **kwargs)

    def _times(self, params):
        names = params.dtype.names
        for column in ("trigger_time", "dragon_time"):
            if column in names and np.all(np.asarray(params[column]) > 0):
                return Time(np.asarray(params[column], dtype=np.float64), format="unix", scale="utc")
        raise LSTChainDL1Error(f"{self.path}: no event times (trigger_time or dragon_time)")

    def _add_parameters(self, table, params):
        names = params.dtype.names
        tel_ids = np.asarray(table["tel_id"])
        f_equivalent = self._focal_lengths(tel_ids, equivalent=True)
        f_frame = self._focal_lengths(tel_ids, equivalent=False)
        rad_to_deg = u.rad.to(u.deg)
        x, y = np.asarray(params["x"], np.float64), np.asarray(params["y"], np.float64)
        table["hillas_intensity"] = np.asarray(params["intensity"], np.float64)
        # ctapipe's CameraFrame -> TelescopeFrame: fov_lat = x / f, fov_lon = y / f
        table["hillas_fov_lon"] = u.Quantity(y / f_frame * rad_to_deg, u.deg)
        table["hillas_fov_lat"] = u.Quantity(x / f_frame * rad_to_deg, u.deg)
        table["hillas_r"] = u.Quantity(np.hypot(x, y) / f_frame * rad_to_deg, u.deg)
        table["hillas_phi"] = u.Quantity(np.degrees(np.arctan2(x, y)), u.deg)
        for column, ctapipe_name in _SIZES.items():
            if column in names:
                # back to metres (lstchain: arctan(metres / f_eq)), then the frame's small-angle mapping
                metres = f_equivalent * np.tan(np.radians(np.asarray(params[column], np.float64)))
                table[ctapipe_name] = u.Quantity(metres / f_frame * rad_to_deg, u.deg)
        # the axis direction (cos psi, sin psi) in (x, y) is (sin psi, cos psi) in (lon, lat)
        psi = np.asarray(params["psi"], np.float64)
        psi_tel = np.pi / 2 - psi
        flip = psi_tel > np.pi / 2  # ctapipe keeps psi in [-90, 90] deg: the axis is reversed
        psi_tel[flip] -= np.pi
        sign = np.where(flip, -1.0, 1.0)
        table["hillas_psi"] = u.Quantity(np.degrees(psi_tel), u.deg)
        table["hillas_skewness"] = sign * np.asarray(params["skewness"], np.float64)
        if "time_gradient" in names:
            # ns per metre along the camera axis -> ns per deg along the telescope-frame axis
            metres_per_deg = f_frame / rad_to_deg
            # unit as ctapipe writes it (peak times are in ns)
            table["timing_slope"] = u.Quantity(sign * params["time_gradient"] * metres_per_deg, 1 / u.deg)
        for column, ctapipe_name in _SAME.items():
            if column in names and ctapipe_name not in table.colnames:
                table[ctapipe_name] = params[column]
        # lstchain <= 0.10 (ctapipe < 0.21): border pixels over all camera pixels; ctapipe now
        # divides by the pixels surviving the cleaning (``n_pixels``)
        n_camera = np.array([self.subarray.tel[int(t)].camera.geometry.n_pixels for t in tel_ids], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_cleaned = n_camera / np.where(params["n_pixels"] > 0, params["n_pixels"], np.nan)
        for width in (1, 2):
            column = f"leakage_pixels_width_{width}"
            if column in names:
                table[column] = np.asarray(params[column], np.float64) * per_cleaned

    def _focal_lengths(self, tel_ids, equivalent):
        """Per-row focal length in metres: equivalent, or the camera frame's."""
        values = {}
        for tel_id in np.unique(tel_ids):
            tel = self.subarray.tel[int(tel_id)]
            f = tel.optics.equivalent_focal_length if equivalent else tel.camera.geometry.frame.focal_length
            values[int(tel_id)] = u.Quantity(f).to_value(u.m)
        return np.array([values[int(t)] for t in tel_ids], dtype=np.float64)

    def _add_images(self, table, name, start, stop):
        path = f"{IMAGE_GROUP}/{name}"
        if path not in self.h5file:
            raise LSTChainDL1Error(f"{self.path}: no DL1 images ({path} missing); {NO_IMAGES_HINT}")
        images = self.h5file.get_node(path).read(start=start, stop=stop)
        for key in _KEYS:
            if not np.array_equal(images[key], np.asarray(table[key])):
                raise LSTChainDL1Error(
                    f"{self.path}: {path} and {PARAMETERS_GROUP}/{name} do not list the same telescope events"
                )
        table["image"] = np.asarray(images["image"], dtype=np.float32)
        table["peak_time"] = np.asarray(images["peak_time"], dtype=np.float32)
