"""DL2 files -> one table of telescope events and one of subarray events.

Every reconstructor found in the files is compared on the same rows: the
events passing one common quality selection. A reconstructor that gives no
valid prediction for one of those rows is not allowed to drop it; its
predictions there are marked invalid (see `reconstructor_events`).
"""

import ast
from pathlib import Path

import astropy.units as u
import numpy as np
import tables
from astropy.table import QTable, vstack
from ctapipe.core.qualityquery import QualityQuery
from ctapipe.core.traits import List, Tuple, Unicode
from ctapipe.io import TableLoader
from ctapipe.io.hdf5dataformat import (
    DL1_TEL_PARAMETERS_GROUP,
    DL2_SUBARRAY_GROUP,
    DL2_TEL_GROUP,
    SIMULATION_SHOWER_TABLE,
)
from pyirf.utils import calculate_theta
from tqdm.auto import tqdm

from ..compat import PARTICLE_TYPE_KEY

# the selection γ-PhysNet is trained with, so that the comparison uses the
# events both methods were built for
from ..data.cuts import DEFAULT_QUALITY_CRITERIA

__all__ = [
    "KINDS",
    "KIND_GROUPS",
    "LEVELS",
    "GAMMA_ID",
    "PROTON_ID",
    "TEL_TYPE_COLUMN",
    "DEFAULT_QUALITY_CRITERIA",
    "BenchmarkInputError",
    "BenchmarkQualityQuery",
    "find_reconstructors",
    "load_events",
    "select_events",
    "quality_columns",
    "reconstructor_events",
]

#: DL2 kinds that the benchmark measures (``impact`` has no metric here)
KINDS = ("energy", PARTICLE_TYPE_KEY, "geometry")
#: HDF5 group names of each kind under a level's group: in ctapipe 0.28 ``ctapipe-process``
#: writes gammaness under ``classification`` but ``ctapipe-apply-models`` under
#: ``particle_type``; `ctapipe.io.hdf5dataformat` knows the latter only
KIND_GROUPS = {"energy": ("energy",), PARTICLE_TYPE_KEY: ("classification", "particle_type"), "geometry": ("geometry",)}
#: benchmark level -> its HDF5 DL2 group
LEVELS = {"mono": DL2_TEL_GROUP, "stereo": DL2_SUBARRAY_GROUP}
GAMMA_ID = 0
PROTON_ID = 101
#: telescope-event column holding ``str(TelescopeDescription)``, e.g. ``LST_LST_LSTCam``
TEL_TYPE_COLUMN = "tel_type"


class BenchmarkQualityQuery(QualityQuery):
    """The common selection on DL1 telescope parameters, applied to every reconstructor alike."""

    quality_criteria = List(
        Tuple(Unicode(), Unicode()),
        default_value=DEFAULT_QUALITY_CRITERIA,
        help="list of ('description', 'expression') on the DL1 parameter columns",
    ).tag(config=True)


_TRUTH = ["true_energy", "true_alt", "true_az", "true_shower_primary_id"]
_KEYS = ["file_index", "obs_id", "event_id"]


class BenchmarkInputError(ValueError):
    """An input file that cannot be benchmarked (missing, no DL2, no truth)."""


def find_reconstructors(path) -> dict:
    """Reconstructor prefixes per level and kind: ``{level: {kind: [prefix, ...]}}``.

    Read from the HDF5 groups ``<level group>/<kind>/<prefix>`` (see `LEVELS`, `KIND_GROUPS`).
    """
    found = {level: {kind: [] for kind in KINDS} for level in LEVELS}
    with tables.open_file(path) as h5:
        for level, group in LEVELS.items():
            for kind in KINDS:
                prefixes = set()
                for name in KIND_GROUPS[kind]:
                    where = f"{group}/{name}"
                    if where in h5:
                        prefixes.update(h5.get_node(where)._v_children)
                found[level][kind] = sorted(prefixes)
    return found


def _merge_found(all_found):
    merged = {level: {kind: set() for kind in KINDS} for level in LEVELS}
    for found in all_found:
        for level in LEVELS:
            for kind in KINDS:
                merged[level][kind].update(found[level][kind])
    return {lv: {k: sorted(v) for k, v in kinds.items()} for lv, kinds in merged.items()}


def _tel_ids_with_events(h5):
    group = h5.get_node(DL1_TEL_PARAMETERS_GROUP)
    return sorted(int(name.split("_")[1]) for name, node in group._v_children.items() if node.nrows > 0)


def _check_file(path):
    path = Path(path)
    if not path.is_file():
        raise BenchmarkInputError(f"{path}: no such file")
    try:
        with tables.open_file(path) as h5:
            has_truth = SIMULATION_SHOWER_TABLE in h5
            has_params = DL1_TEL_PARAMETERS_GROUP in h5
            # only telescopes with events: the loader is slow per telescope
            tel_ids = _tel_ids_with_events(h5) if has_params else []
    except (OSError, tables.HDF5ExtError) as err:
        raise BenchmarkInputError(f"{path}: not a readable HDF5 file ({err})") from None
    found = find_reconstructors(path)
    if not any(found[level][kind] for level in LEVELS for kind in KINDS):
        raise BenchmarkInputError(f"{path}: no DL2 reconstruction in /dl2/event")
    if not has_truth:
        raise BenchmarkInputError(f"{path}: no simulated truth ({SIMULATION_SHOWER_TABLE})")
    if not has_params:
        raise BenchmarkInputError(
            f"{path}: no DL1 parameters ({DL1_TEL_PARAMETERS_GROUP}) for the quality selection"
        )
    return found, tel_ids


def _keep_columns(table, prefixes, extra):
    wanted = set(_KEYS + _TRUTH + list(extra))
    keep = [c for c in table.colnames if c in wanted or any(c.startswith(p + "_") for p in prefixes)]
    return table[keep]


def load_events(paths, parameter_columns=("hillas_intensity", "leakage_intensity_width_2"), progress=False):
    """Read DL2 + truth + the DL1 parameters needed for the quality selection.

    Returns ``(tel_events, subarray_events, reconstructors)``; both tables carry
    ``file_index`` so that event ids of different files never collide, and the
    telescope events carry their telescope type (`TEL_TYPE_COLUMN`), taken from
    each file's own subarray (tel_ids mean different telescopes in different files).
    """
    if not paths:
        raise BenchmarkInputError("no input files")
    checked = [_check_file(path) for path in paths]  # fail before the slow reading
    tel_tables, sub_tables = [], []
    for index, path in enumerate(tqdm(paths, desc="reading DL2", unit="file", disable=not progress)):
        found, tel_ids = checked[index]
        prefixes = {p for level in found.values() for kind in level.values() for p in kind}
        # the focal length only matters for pixel geometry, which is not read here;
        # EQUIVALENT works for old and new files alike
        with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
            sub = loader.read_subarray_events(dl2=True, simulated=True, observation_info=False)
            tel = loader.read_telescope_events(
                tel_ids, dl1_parameters=True, dl2=True, simulated=True, instrument=False, pointing=False
            )
            types = {tel_id: str(loader.subarray.tel[tel_id]) for tel_id in tel_ids}
        for table in (sub, tel):
            table["file_index"] = np.full(len(table), index)
        sub_tables.append(_keep_columns(sub, prefixes, []))
        tel = _keep_columns(tel, prefixes, ["tel_id", *parameter_columns])
        tel[TEL_TYPE_COLUMN] = np.array([types[tel_id] for tel_id in np.asarray(tel["tel_id"])], dtype=str)
        tel_tables.append(tel)
    tel_events = QTable(vstack(tel_tables, join_type="outer", metadata_conflicts="silent"))
    sub_events = QTable(vstack(sub_tables, join_type="outer", metadata_conflicts="silent"))
    return tel_events, sub_events, _merge_found([found for found, _ in checked])


def select_events(tel_events, sub_events, quality_criteria=DEFAULT_QUALITY_CRITERIA):
    """The common event set: telescope events passing every criterion, and the
    subarray events with at least one such telescope event."""
    missing = [name for name in quality_columns(quality_criteria) if name not in tel_events.colnames]
    if missing:
        raise BenchmarkInputError(f"quality criteria use columns absent from the DL1 parameters: {sorted(missing)}")
    query = QualityQuery(quality_criteria=list(quality_criteria))
    with np.errstate(invalid="ignore"):
        mask = np.asarray(query.get_table_mask(_filled(tel_events)), dtype=bool)
    tel_selected = tel_events[mask]
    keys = set(zip(*(np.asarray(tel_selected[k]) for k in _KEYS)))
    sub_mask = np.array([key in keys for key in zip(*(np.asarray(sub_events[k]) for k in _KEYS))], dtype=bool)
    return tel_selected, sub_events[sub_mask]


def quality_columns(quality_criteria):
    """Column names an expression list reads."""
    return sorted({name for _, expr in quality_criteria for name in _names_in(expr)})


def _names_in(expression):
    return {node.id for node in ast.walk(ast.parse(expression)) if isinstance(node, ast.Name)}


def _filled(table):
    """Masked entries (a file without a column) become NaN / False."""
    out = QTable(table, copy=False)
    for name in out.colnames:
        col = out[name]
        if hasattr(col, "mask") and np.any(col.mask):
            fill = False if col.dtype == bool else np.nan if col.dtype.kind == "f" else 0
            out[name] = col.filled(fill)
    return out


def _column(events, name, unit=None):
    if name not in events.colnames:
        values = np.full(len(events), np.nan)
        return u.Quantity(values, unit) if unit else values
    col = events[name]
    if hasattr(col, "mask"):
        col = col.filled(np.nan) if col.dtype.kind == "f" else col.filled(False)
    if unit is not None:
        return u.Quantity(col, unit)
    return np.asarray(col)


def reconstructor_events(events, prefix, kind, level):
    """pyirf-style table of one reconstructor's predictions on the common events.

    Columns: ``true_energy``, ``particle_id``, ``valid`` and, depending on
    ``kind``, ``reco_energy`` / ``theta`` / ``gammaness``. Invalid predictions
    keep their row with NaN values and ``valid=False``.
    """
    tag = f"{prefix}_tel_" if level == "mono" else f"{prefix}_"
    table = QTable()
    table["true_energy"] = _column(events, "true_energy", u.TeV)
    table["particle_id"] = _column(events, "true_shower_primary_id").astype(np.int64)
    valid = _column(events, tag + "is_valid")
    valid = np.zeros(len(events), bool) if valid.dtype.kind == "f" else valid.astype(bool)
    if kind == "energy":
        table["reco_energy"] = _column(events, tag + "energy", u.TeV)
        valid &= np.isfinite(table["reco_energy"]) & (table["reco_energy"] > 0 * u.TeV)
    elif kind == "geometry":
        table["reco_alt"] = _column(events, tag + "alt", u.deg)
        table["reco_az"] = _column(events, tag + "az", u.deg)
        table["theta"] = calculate_theta(table, _column(events, "true_az", u.deg), _column(events, "true_alt", u.deg))
        valid &= np.isfinite(table["theta"])
    elif kind == PARTICLE_TYPE_KEY:
        table["gammaness"] = _column(events, tag + "prediction")
        valid &= np.isfinite(table["gammaness"])
    else:
        raise ValueError(f"unknown reconstruction kind {kind!r}")
    table["valid"] = valid
    return table
