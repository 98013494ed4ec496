"""An lstchain DL1 file rewritten as ctapipe DL1, readable by `~ctapipe.io.TableLoader`.

What ``ctapipe-apply-gammalearn`` appends its DL2 to, so that the readers of ctapipe
files through `~ctapipe.io.TableLoader` (the benchmark, the observation-level figures)
take lstchain runs unchanged. ctapipe's event loop (`~ctapipe.io.HDF5EventSource`) does
not open it: it wants tables an lstchain file has no content for (per-telescope trigger
details, simulated camera images). Written (paths from `ctapipe.io.hdf5dataformat`):

- the subarray (``/configuration/instrument``), observation and scheduling blocks;
- subarray and telescope trigger tables (event times, event types);
- per telescope: images and peak times, the DL1 parameters in ctapipe's names and
  units (`~ctapipe_gammalearn.io.lstchain.LSTChainDL1File.read`);
- pointing: simulations a fixed pointing per observation
  (``/configuration/telescope/pointing``), observed runs the per-event pointing as
  monitoring (``/dl0/monitoring/telescope/pointing``), interpolated by ctapipe at the
  event times (exact there);
- simulations: the shower truth of each array event, the run configuration and the
  thrown-event histogram.
"""

import astropy.units as u
import numpy as np
import tables
from astropy.table import QTable, Table, unique, vstack
from ctapipe.containers import (
    CoordinateFrameType,
    ObservationBlockContainer,
    SchedulingBlockContainer,
)
from ctapipe.core import Provenance
from ctapipe.io import DataLevel, HDF5TableWriter, write_table
from ctapipe.io.datawriter import write_reference_metadata_headers
from ctapipe.io.hdf5dataformat import (
    DL0_TEL_POINTING_GROUP,
    DL1_SUBARRAY_TRIGGER_TABLE,
    DL1_TEL_IMAGES_GROUP,
    DL1_TEL_PARAMETERS_GROUP,
    DL1_TEL_TRIGGER_TABLE,
    FIXED_POINTING_GROUP,
    SHOWER_DISTRIBUTION_TABLE,
    SIMULATION_RUN_TABLE,
    SIMULATION_SHOWER_TABLE,
)
from ctapipe.io.metadata import Contact, Instrument

from .hdf5_tables import read_old_ctapipe_table
from .lstchain import LSTChainDL1Error, LSTChainDL1File

__all__ = ["write_ctapipe_dl1"]

_KEYS = ["obs_id", "event_id", "tel_id"]
_SHOWER = [
    "true_energy",
    "true_alt",
    "true_az",
    "true_core_x",
    "true_core_y",
    "true_h_first_int",
    "true_x_max",
    "true_shower_primary_id",
]
#: lstchain's simulation tables -> ctapipe's, and their renamed columns
_SIMULATION_TABLES = {
    "/simulation/run_config": (SIMULATION_RUN_TABLE, {"num_showers": "n_showers"}),
    "/simulation/thrown_event_distribution": (SHOWER_DISTRIBUTION_TABLE, {"num_entries": "n_entries"}),
}


def write_ctapipe_dl1(source: LSTChainDL1File, output, chunk_size=10000):
    """Write the telescope events of ``source`` (an open `LSTChainDL1File`) to the
    new file ``output`` as ctapipe DL1 with images, ``chunk_size`` events at a time."""
    names = source.table_names
    if len(names) != 1:
        raise LSTChainDL1Error(
            f"{source.path}: {len(names)} telescope-type tables with events ({', '.join(names) or 'none'}); "
            "one is supported (lstchain writes only LST_LSTCam)"
        )
    telescope_type = source.telescope_type(names[0])
    if not source.has_images:
        # before anything is written
        source.read(telescope_type, 0, 1)
    events = []
    with tables.open_file(output, "w") as h5:
        source.subarray.to_hdf(h5)
        for chunk in source.iter_chunks(telescope_type, chunk_size, images=True, simulated=True):
            _write_telescope_events(h5, chunk)
            events.append(_array_level_columns(chunk))
        events = vstack(events) if events else QTable()
        _write_array_events(h5, source, events)
        _write_pointing(h5, source, events)
        if source.is_simulation:
            _write_simulation(h5, source, events)
    with HDF5TableWriter(output, mode="a") as writer:
        _write_blocks(writer, events)
        _write_reference(writer, source, events)


def _per_tel(table):
    for tel_id in np.unique(np.asarray(table["tel_id"])):
        yield int(tel_id), table[np.asarray(table["tel_id"]) == tel_id]


def _write_telescope_events(h5, chunk):
    images = ["image", "peak_time"]
    parameters = [
        c for c in chunk.colnames
        if c.split("_")[0] in ("hillas", "timing", "leakage", "concentration", "morphology")
    ]
    for tel_id, rows in _per_tel(chunk):
        write_table(rows[_KEYS + images], h5, f"{DL1_TEL_IMAGES_GROUP}/tel_{tel_id:03d}", append=True)
        write_table(rows[_KEYS + parameters], h5, f"{DL1_TEL_PARAMETERS_GROUP}/tel_{tel_id:03d}", append=True)
    trigger = Table(chunk[_KEYS + ["time", "event_type"]])
    trigger["n_trigger_pixels"] = np.full(len(chunk), -1, np.int32)
    write_table(trigger, h5, DL1_TEL_TRIGGER_TABLE, append=True)


def _array_level_columns(chunk):
    """Columns of the telescope events needed for the subarray, pointing and truth tables."""
    columns = _KEYS + ["time", "event_type", "telescope_pointing_altitude", "telescope_pointing_azimuth"]
    return QTable(chunk[columns + [c for c in _SHOWER if c in chunk.colnames]])


def _write_array_events(h5, source, events):
    """One trigger row per array event, in file order, with the mask of its telescopes."""
    keys = list(zip(np.asarray(events["obs_id"]), np.asarray(events["event_id"])))
    first = {}
    tels = {}
    for row, key in enumerate(keys):
        first.setdefault(key, row)
        tels.setdefault(key, []).append(int(events["tel_id"][row]))
    rows = np.array(list(first.values()), dtype=np.int64)
    trigger = Table(events[["obs_id", "event_id", "time", "event_type"]][rows])
    trigger["tels_with_trigger"] = np.array([source.subarray.tel_ids_to_mask(tels[k]) for k in first])
    write_table(trigger[["obs_id", "event_id", "time", "tels_with_trigger", "event_type"]], h5,
                DL1_SUBARRAY_TRIGGER_TABLE)
    if source.is_simulation:
        shower = Table(events[["obs_id", "event_id"] + [c for c in _SHOWER if c in events.colnames]][rows])
        write_table(shower, h5, SIMULATION_SHOWER_TABLE)


def _write_pointing(h5, source, events):
    """Fixed pointing per observation for simulations (and observed runs with one
    event time per telescope); else the per-event pointing as monitoring."""
    for tel_id, rows in _per_tel(events):
        times = np.asarray(rows["time"].mjd)
        _, first = np.unique(times, return_index=True)
        if source.is_simulation or len(first) < 2:
            fixed = unique(Table(rows[["obs_id", "tel_id", "telescope_pointing_azimuth",
                                       "telescope_pointing_altitude"]]), keys="obs_id")
            write_table(fixed, h5, f"{FIXED_POINTING_GROUP}/tel_{tel_id:03d}")
            continue
        monitoring = Table(
            {
                "time": rows["time"][first],
                "azimuth": u.Quantity(rows["telescope_pointing_azimuth"][first]).to(u.rad),
                "altitude": u.Quantity(rows["telescope_pointing_altitude"][first]).to(u.rad),
            }
        )
        write_table(monitoring, h5, f"{DL0_TEL_POINTING_GROUP}/tel_{tel_id:03d}")


def _write_simulation(h5, source, events):
    for lstchain_path, (ctapipe_path, renamed) in _SIMULATION_TABLES.items():
        if lstchain_path not in source.h5file:
            continue
        table = read_old_ctapipe_table(source.h5file, lstchain_path)
        for old, new in renamed.items():
            if old in table.colnames:
                table.rename_column(old, new)
        if "run_number" not in table.colnames and ctapipe_path == SIMULATION_RUN_TABLE:
            table["run_number"] = table["obs_id"]
        write_table(table, h5, ctapipe_path)


def _write_blocks(writer, events):
    """One observation block per obs_id, its pointing the first event's (alt/az)."""
    blocks = []
    for obs_id in np.unique(np.asarray(events["obs_id"])):
        rows = events[np.asarray(events["obs_id"]) == obs_id]
        blocks.append(
            (
                SchedulingBlockContainer(sb_id=np.uint64(obs_id), producer_id="lstchain"),
                ObservationBlockContainer(
                    obs_id=np.uint64(obs_id),
                    sb_id=np.uint64(obs_id),
                    producer_id="lstchain",
                    subarray_pointing_lat=u.Quantity(rows["telescope_pointing_altitude"][0]).to(u.deg),
                    subarray_pointing_lon=u.Quantity(rows["telescope_pointing_azimuth"][0]).to(u.deg),
                    subarray_pointing_frame=CoordinateFrameType.ALTAZ,
                    actual_start_time=rows["time"][0],
                ),
            )
        )
    for scheduling, observation in blocks:
        writer.write("configuration/observation/scheduling_block", scheduling)
        writer.write("configuration/observation/observation_block", observation)


def _write_reference(writer, source, events):
    """ctapipe's product metadata (data levels, process, activity), as ctapipe-process writes it."""
    provenance = Provenance()
    if provenance.current_activity is None and not provenance.finished_activities:
        return  # outside a Tool there is no activity to describe
    write_reference_metadata_headers(
        obs_ids=sorted(int(o) for o in np.unique(np.asarray(events["obs_id"]))),
        subarray=source.subarray,
        writer=writer,
        is_simulation=source.is_simulation,
        data_levels=[DataLevel.DL1_IMAGES.name, DataLevel.DL1_PARAMETERS.name],
        contact_info=Contact(),
        instrument_info=Instrument(),
    )
