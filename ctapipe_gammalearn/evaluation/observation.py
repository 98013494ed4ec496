"""The benchmark's detection of a point-like source, for every method of the input files.

* Simulated inputs (point-like gammas at a wobble offset, diffuse protons, optionally
  diffuse electrons, with their simulation information): the expected detection in ``observation_time`` of the Crab
  (`.detection.simulated_observation`) for every method of `.sensitivity.method_triples`
  (stereo, and mono per telescope type) and every kind of cuts (`.detection.CUT_KINDS`).
* Observed runs (DL2 without simulation truth, e.g. real runs or the pseudo-observations
  of `.pseudo`): on/off counts around a given sky position (`.detection.observed_run`),
  with cuts read from the ``cuts.ecsv`` of a simulated report or one fixed gammaness
  threshold and θ cut; the runs of all files are stacked (`.detection.stack_runs`).

Rows are `.detection.detection_row` dicts (observed ones with ``run_ids`` and ``livetime_h``).
"""

import logging
from pathlib import Path

import astropy.units as u
import numpy as np
import tables
from astropy.coordinates import AltAz, SkyCoord
from astropy.table import QTable, vstack
from astropy.time import Time
from ctapipe.containers import CoordinateFrameType
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import TableLoader, read_table
from ctapipe.io.hdf5dataformat import (
    DL0_TEL_POINTING_GROUP,
    DL1_SUBARRAY_TRIGGER_TABLE,
    DL1_TEL_PARAMETERS_GROUP,
    DL1_TEL_POINTING_GROUP,
    DL2_SUBARRAY_GROUP,
    OBSERVATION_BLOCK_TABLE,
    SIMULATION_SHOWER_TABLE,
)

from ..compat import PARTICLE_TYPE_KEY
from .detection import (
    CUT_KINDS,
    DEFAULT_N_OFF,
    DEFAULT_OBSERVATION_TIME,
    TARGET_SPECTRA,
    DetectionInputError,
    observed_run,
    simulated_observation,
    stack_runs,
    stack_theta2,
    weight_events,
)
from .events import (
    DEFAULT_QUALITY_CRITERIA,
    TEL_TYPE_COLUMN,
    BenchmarkInputError,
    _column,
    find_reconstructors,
    quality_columns,
    select_events,
)
from .report import telescope_types
from .sensitivity import (
    SensitivityUnavailable,
    _combine,
    _pointing,
    _simulation_info,
    method_triples,
    simulation_inputs,
)

__all__ = [
    "CUTS_FILE",
    "CRAB_RA",
    "CRAB_DEC",
    "ObservationUnavailable",
    "is_observed",
    "method_table",
    "simulated_method_events",
    "simulated_observations",
    "observed_events",
    "observed_observations",
    "threshold_cut_table",
    "write_cuts",
    "read_cuts",
    "cuts_methods",
    "format_observation",
    "observation_entry",
]

log = logging.getLogger(__name__)

#: cuts of every method and kind, written into the report folder of a simulated run
CUTS_FILE = "cuts.ecsv"
#: the Crab nebula (ICRS, deg)
CRAB_RA = 83.633 * u.deg
CRAB_DEC = 22.0145 * u.deg
ELECTRON_ID = 1
_ROLES = ("gammaness", "energy", "geometry")
_CUT_COLUMNS = ("low", "high", "center", "gh_cut", "theta_cut", "n_events")


class ObservationUnavailable(Exception):
    """The inputs allow no simulated observation (one-line reason)."""


def is_observed(path) -> bool:
    """A DL2 file of an observed run: subarray DL2 and no simulated showers."""
    with tables.open_file(path) as h5:
        return SIMULATION_SHOWER_TABLE not in h5 and DL2_SUBARRAY_GROUP in h5


def method_table(events, method, tag="_"):
    """Detection-style columns of one method (``{"energy", "geometry", "gammaness"}``
    prefixes) on subarray events (telescope events with ``tag="_tel_"``): ``reco_energy``,
    ``reco_alt``/``reco_az``, ``gammaness`` and ``event_id`` (plus the truth where present);
    rows with a valid prediction of all three."""
    out = QTable()
    out["event_id"] = np.asarray(events["event_id"])
    out["obs_id"] = np.asarray(events["obs_id"])
    out["reco_energy"] = _column(events, f"{method['energy']}{tag}energy", u.TeV)
    out["reco_alt"] = _column(events, f"{method['geometry']}{tag}alt", u.deg)
    out["reco_az"] = _column(events, f"{method['geometry']}{tag}az", u.deg)
    out["gammaness"] = _column(events, f"{method['gammaness']}{tag}prediction")
    valid = np.ones(len(events), bool)
    for prefix in method.values():
        flag = _column(events, f"{prefix}{tag}is_valid")
        valid &= flag.astype(bool) if flag.dtype.kind != "f" else np.zeros(len(events), bool)
    valid &= np.isfinite(out["reco_energy"].value) & (out["reco_energy"] > 0 * u.TeV)
    valid &= np.isfinite(out["reco_alt"].value) & np.isfinite(out["reco_az"].value)
    valid &= np.isfinite(np.asarray(out["gammaness"], float))
    for name in ("true_energy", "true_alt", "true_az"):
        if name in events.colnames:
            out[name] = _column(events, name, u.TeV if name == "true_energy" else u.deg)
    for name in ("time", "pointing_alt", "pointing_az", "file_index", "hillas_intensity"):
        if name in events.colnames:
            out[name] = events[name]
    return out[valid]


def _one_per_shower(table):
    """One row per shower (``file_index``, ``obs_id``, ``event_id``): its brightest image
    (largest ``hillas_intensity``) where several telescopes of a type saw it."""
    if len(table) == 0:
        return table
    order = np.argsort(-np.nan_to_num(np.asarray(table["hillas_intensity"], float), nan=-1.0)) \
        if "hillas_intensity" in table.colnames else np.arange(len(table))
    keys = np.stack([np.asarray(table[k], np.int64) for k in ("file_index", "obs_id", "event_id")
                     if k in table.colnames], axis=1)[order]
    _, first = np.unique(keys, axis=0, return_index=True)
    return table[np.sort(order[first])]


# --------------------------------------------------------------------------- simulated


def simulated_method_events(paths, sub_events, methods, observation_time=DEFAULT_OBSERVATION_TIME, events=None,
                            tag="_"):
    """``{method: {"gammas": QTable, "protons": QTable}}``: weighted events of each method
    (gammas to `TARGET_SPECTRA` ``gamma``, protons ``proton``) for ``observation_time``,
    from the subarray events, or from ``events`` (telescope events of one type, ``tag="_tel_"``,
    one image per shower). Diffuse electron files, where present, join the protons
    (weighted to ``electron``). Raises `ObservationUnavailable` without point-like gammas
    or diffuse protons."""
    try:
        inputs = simulation_inputs(paths, sub_events)
        electrons = _electron_inputs(paths, sub_events)
        if electrons is not None:
            inputs["electrons"] = electrons
        events = sub_events if events is None else events
        alt, az = _pointing(paths, events, [i for indices, _ in inputs.values() for i in indices])
    except SensitivityUnavailable as err:
        raise ObservationUnavailable(str(err)) from None
    file_index = np.asarray(events["file_index"])
    out = {}
    for name, method in methods.items():
        out[name] = {}
        for kind, particle in (("gammas", "gamma"), ("protons", "proton"), ("electrons", "electron")):
            if kind not in inputs:
                continue
            indices, sim_info = inputs[kind]
            rows = np.isin(file_index, indices)
            part = QTable(events[rows], copy=True)
            part["pointing_alt"], part["pointing_az"] = alt[rows], az[rows]
            table = method_table(part, method, tag)
            if tag != "_":
                table = _one_per_shower(table)
            out[name][kind] = weight_events(table, sim_info, TARGET_SPECTRA[particle], observation_time)
        if "electrons" in out[name]:
            out[name]["protons"] = QTable(vstack([out[name]["protons"], out[name].pop("electrons")]))
    return out


def _electron_inputs(paths, sub_events):
    """``(file_indices, SimulatedEventsInfo)`` of the diffuse electron files, or None."""
    primary_id = np.asarray(sub_events["true_shower_primary_id"])
    file_index = np.asarray(sub_events["file_index"])
    found = []
    for index, path in enumerate(paths):
        if set(np.unique(primary_id[file_index == index]).tolist()) != {ELECTRON_ID}:
            continue
        info = _simulation_info(path)
        if info is not None and u.Quantity(info.viewcone_max - info.viewcone_min).value > 0:
            found.append((index, info))
    if not found:
        return None
    return [i for i, _ in found], _combine([info for _, info in found], "electrons")


def simulated_observations(paths, sub_events, reconstructors, references, tel_events=None, **options):
    """``(rows, details)``: `simulated_observation` of every method and kind of cuts;
    ``details[method][kind] = {"cuts", "theta2"}``. Stereo methods are named as in
    `method_triples`; with ``tel_events`` of more than one telescope, mono methods per
    telescope type follow (``<stem> mono <type>``, one image per shower: the brightest of
    that type).
    A method and kind the detection refuses (e.g. too few events) is left out with a log
    line; none left raises `ObservationUnavailable`."""
    time = options.get("observation_time", DEFAULT_OBSERVATION_TIME)
    events, triples = {}, {}
    stereo = method_triples(reconstructors, references)
    if stereo:
        events.update(simulated_method_events(paths, sub_events, stereo, time))
        triples.update({name: ("stereo", triple) for name, triple in stereo.items()})
    mono = method_triples({"stereo": reconstructors.get("mono", {})}, {"stereo": references.get("mono", {})})
    # one telescope in all: its mono events are the stereo ones
    if tel_events is not None and mono and len(np.unique(np.asarray(tel_events["tel_id"]))) > 1:
        for tel_type in telescope_types(tel_events):
            of_type = tel_events[np.asarray(tel_events[TEL_TYPE_COLUMN]) == tel_type]
            parts = simulated_method_events(paths, sub_events, mono, time, events=of_type, tag="_tel_")
            events.update({f"{name} mono {tel_type}": part for name, part in parts.items()})
            triples.update({f"{name} mono {tel_type}": ("mono", triple) for name, triple in mono.items()})
    if not events:
        raise ObservationUnavailable("no gammaness + energy + geometry of one method")
    kinds = options.pop("kinds", CUT_KINDS)
    rows, details, reasons = [], {}, []
    for name, parts in events.items():
        for kind in kinds:  # one kind the inputs do not allow (e.g. best cuts) costs that kind only
            try:
                kind_rows, kind_details = simulated_observation(name, parts["gammas"], parts["protons"],
                                                                kinds=(kind,), **options)
            except DetectionInputError as err:
                log.warning("no %s cuts for %s: %s", kind, name, err)
                reasons.append(f"{name} {kind}: {err}")
                continue
            rows += kind_rows
            for entry in kind_details.values():  # which predictions the cuts belong to
                entry["cuts"].meta.update(level=triples[name][0], reconstructors=dict(triples[name][1]))
            details.setdefault(name, {}).update(kind_details)
    if not rows:
        raise ObservationUnavailable("; ".join(reasons) or "no method")
    return rows, details


# --------------------------------------------------------------------------- observed


def _run_pointing(path, h5, events, blocks):
    """Pointing alt/az [deg] of each event: the first telescope's monitored pointing
    (``/dl0`` or ``/dl1/monitoring/telescope/pointing``) interpolated at the event times,
    else the observation block's (alt/az or tracked ICRS)."""
    times = events["time"]
    groups = [g for g in (DL0_TEL_POINTING_GROUP, DL1_TEL_POINTING_GROUP)
              if g in h5 and any(node.nrows > 1 for node in h5.get_node(g)._v_children.values())]
    if groups:
        name = sorted(n for n, node in h5.get_node(groups[0])._v_children.items() if node.nrows > 1)[0]
        table = read_table(h5, f"{groups[0]}/{name}")
        t = Time(table["time"]).mjd
        order = np.argsort(t)
        alt = np.interp(times.mjd, t[order], u.Quantity(table["altitude"], u.deg).value[order])
        az = np.interp(times.mjd, t[order], np.unwrap(u.Quantity(table["azimuth"], u.rad).value[order])) % (2 * np.pi)
        return alt * u.deg, np.degrees(az) * u.deg
    if blocks is None:
        raise DetectionInputError(f"{path}: no pointing ({DL0_TEL_POINTING_GROUP} or {OBSERVATION_BLOCK_TABLE})")
    alt = np.full(len(events), np.nan) * u.deg
    az = np.full(len(events), np.nan) * u.deg
    location = SubarrayDescription.from_hdf(path, focal_length_choice="EQUIVALENT").reference_location
    for block in blocks:
        rows = np.asarray(events["obs_id"]) == block["obs_id"]
        lon, lat = u.Quantity(block["subarray_pointing_lon"], u.deg), u.Quantity(block["subarray_pointing_lat"], u.deg)
        if not (np.isfinite(lon.value) and np.isfinite(lat.value)) or not np.any(rows):
            continue
        if int(block["subarray_pointing_frame"]) == CoordinateFrameType.ICRS.value:
            frame = AltAz(obstime=times[rows], location=location)
            altaz = SkyCoord(ra=lon, dec=lat, frame="icrs").transform_to(frame)
            alt[rows], az[rows] = altaz.alt.to(u.deg), altaz.az.to(u.deg)
        else:
            alt[rows], az[rows] = lat, lon
    if not np.all(np.isfinite(alt.value)):
        raise DetectionInputError(f"{path}: no pointing for some events (observation block without a pointing)")
    return alt, az


def observed_events(path, quality_criteria=DEFAULT_QUALITY_CRITERIA):
    """``(events, location, found, livetime)`` of one observed DL2 file: subarray events
    with DL2, ``time``, ``pointing_alt``/``pointing_az``; the array location; the
    reconstructors (`find_reconstructors`); live time per ``obs_id``.

    Where the file holds DL1 parameters (a run processed with ctapipe-process), only the
    events with a telescope passing ``quality_criteria`` are kept: the selection the cuts
    were made on in the simulations. Files without them (pseudo-observations, drawn from
    selected events already) are kept whole."""
    path = Path(path)
    try:
        with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
            events = loader.read_subarray_events(dl2=True, simulated=False, observation_info=False)
            location = loader.subarray.reference_location
            events = _quality_selected(path, loader, events, quality_criteria)
    except (OSError, tables.HDF5ExtError, KeyError, tables.NoSuchNodeError) as err:
        raise DetectionInputError(f"{path}: not a readable DL2 file ({err})") from None
    if "time" not in events.colnames:
        raise DetectionInputError(f"{path}: no event times ({DL1_SUBARRAY_TRIGGER_TABLE})")
    if len(events) == 0:
        raise DetectionInputError(f"{path}: no events")
    with tables.open_file(path) as h5:
        blocks = read_table(h5, OBSERVATION_BLOCK_TABLE) if OBSERVATION_BLOCK_TABLE in h5 else None
        events["pointing_alt"], events["pointing_az"] = _run_pointing(path, h5, events, blocks)
    livetime = {}
    for obs_id in np.unique(np.asarray(events["obs_id"])):
        duration = np.nan
        if blocks is not None and "actual_duration" in blocks.colnames:
            match = blocks[np.asarray(blocks["obs_id"]) == obs_id]
            if len(match):
                duration = u.Quantity(match["actual_duration"][0], u.min).to_value(u.h)
        if not np.isfinite(duration):
            t = events["time"][np.asarray(events["obs_id"]) == obs_id].mjd
            duration = (np.max(t) - np.min(t)) * 24
        livetime[int(obs_id)] = duration * u.h
    return events, location, find_reconstructors(path), livetime


def _quality_selected(path, loader, events, quality_criteria):
    """The subarray events with at least one telescope event passing ``quality_criteria``."""
    h5 = loader.h5file
    has_parameters = DL1_TEL_PARAMETERS_GROUP in h5 and h5.get_node(DL1_TEL_PARAMETERS_GROUP)._v_children
    if not quality_criteria or not has_parameters:
        log.info("%s: no DL1 parameters, so no quality selection (pseudo-runs are drawn from selected events)", path)
        return events
    tel = loader.read_telescope_events(dl1_parameters=True, dl2=False, simulated=False, instrument=False,
                                       pointing=False)
    missing = [name for name in quality_columns(quality_criteria) if name not in tel.colnames]
    if missing:
        raise DetectionInputError(f"{path}: the quality criteria use columns absent from its DL1 parameters: {missing}")
    tel["file_index"] = np.zeros(len(tel), dtype=int)
    events["file_index"] = np.zeros(len(events), dtype=int)
    try:
        _, selected = select_events(tel, events, quality_criteria)
    except BenchmarkInputError as err:
        raise DetectionInputError(f"{path}: {err}") from None
    selected.remove_column("file_index")
    return selected


def threshold_cut_table(gammaness_threshold, on_radius):
    """One bin over all energies: a fixed gammaness cut and θ cut (observed runs without cuts)."""
    table = QTable()
    table["low"] = [1e-4] * u.TeV
    table["high"] = [1e4] * u.TeV
    table["center"] = [1.0] * u.TeV
    table["gh_cut"] = [float(gammaness_threshold)]
    table["theta_cut"] = [u.Quantity(on_radius, u.deg).value] * u.deg
    table["n_events"] = [0]
    table.meta["CUTS"] = "threshold"
    return table


def _check_methods(path, found, methods):
    for name, method in methods.items():
        for kind, prefix in method.items():
            key = PARTICLE_TYPE_KEY if kind == "gammaness" else kind
            if prefix not in found["stereo"][key]:
                raise DetectionInputError(f"{path}: reconstructor {prefix} of {name} missing ({key})")


def observed_observations(paths, methods, source_ra, source_dec, cuts=None, *, gammaness_threshold=0.5,
                          on_radius=None, n_off=DEFAULT_N_OFF, energy_min=None, energy_max=None,
                          theta2_bins=None, quality_criteria=DEFAULT_QUALITY_CRITERIA):
    """``(rows, details)`` of observed runs: per method (``{name: triple}``; None: those of the
    cuts, `cuts_methods`) and kind of cuts, the runs of all ``paths`` stacked. ``cuts``:
    ``{method: {kind: table}}`` (`read_cuts`), else one threshold cut (``gammaness_threshold``
    and ``on_radius``). A reconstructor of a method missing from a file is an error naming it.
    ``details[method][kind] = {"cuts", "theta2", "runs"}`` (``runs``: the per-run rows).
    ``quality_criteria``: the DL1 selection of the simulations, applied where a run has DL1
    parameters (see `observed_events`)."""
    if cuts is None and on_radius is None:
        raise DetectionInputError("observed runs need cuts (--cuts-from) or a θ cut (--on-radius)")
    if methods is None:
        methods = cuts_methods(cuts) if cuts is not None else {}
        if not methods:
            raise DetectionInputError("no method: give the methods or a cuts file naming their reconstructors")
    if cuts is not None:
        missing = sorted(set(methods) - set(cuts))
        for name in missing:
            log.info("no cuts for %s in the cuts file: left out", name)
        methods = {name: m for name, m in methods.items() if name in cuts}
        if not methods:
            raise DetectionInputError(f"no method of the cuts file in the inputs (cuts for {sorted(cuts)})")
    per_run, empty = {}, set()
    for path in paths:
        events, location, found, livetime = observed_events(path, quality_criteria)
        _check_methods(path, found, methods)
        for name, method in methods.items():
            table = method_table(events, method)
            if len(table) == 0:  # e.g. a stereo-only geometry on a mono run
                log.warning("%s: no valid prediction of %s (%s): left out", path, name, ", ".join(method.values()))
                empty.add(name)
                continue
            method_cuts = cuts[name] if cuts is not None else {"threshold": threshold_cut_table(
                gammaness_threshold, on_radius)}
            for kind, cut_table in method_cuts.items():
                for obs_id, hours in livetime.items():
                    run = table[np.asarray(table["obs_id"]) == obs_id]
                    row, theta2 = observed_run(name, run, source_ra, source_dec, location, cut_table, run_id=obs_id,
                                               livetime=hours, n_off=n_off, on_radius=on_radius,
                                               energy_min=energy_min, energy_max=energy_max, name=str(path),
                                               theta2_bins=theta2_bins, kind=kind)
                    per_run.setdefault((name, kind), []).append((row, theta2, cut_table))
    per_run = {key: runs for key, runs in per_run.items() if key[0] not in empty}
    if not per_run:
        raise DetectionInputError(f"{paths[0]}: no valid prediction of any method ({', '.join(methods)})")
    rows, details = [], {}
    for (name, kind), runs in per_run.items():
        rows.append(stack_runs([r for r, _, _ in runs], different_alpha=True))
        details.setdefault(name, {})[kind] = {"cuts": runs[0][2], "theta2": stack_theta2([t for _, t, _ in runs]),
                                              "runs": [r for r, _, _ in runs]}
    return rows, details


# --------------------------------------------------------------------------- cuts file


def write_cuts(path, details):
    """All cut tables of ``details`` (``{method: {kind: {"cuts": table}}}``) in one ECSV,
    with columns ``method``, ``kind``, ``level`` and the reconstructor prefixes
    ``gammaness_prefix``, ``energy_prefix``, ``geometry_prefix`` (from the tables' meta)."""
    parts = []
    for method, kinds in details.items():
        for kind, entry in kinds.items():
            table = QTable({name: entry["cuts"][name] for name in _CUT_COLUMNS})
            table["method"] = method
            table["kind"] = kind
            table["level"] = entry["cuts"].meta.get("level", "")
            for role in _ROLES:
                table[f"{role}_prefix"] = entry["cuts"].meta.get("reconstructors", {}).get(role, "")
            parts.append(table)
    out = QTable(vstack(parts, metadata_conflicts="silent"))
    out.meta = {"description": "cuts per method and kind of cuts, per bin of reconstructed energy"}
    out.write(path, format="ascii.ecsv", overwrite=True)


def read_cuts(path):
    """``{method: {kind: cut table}}`` from a `write_cuts` file (or a report folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / CUTS_FILE
    try:
        table = QTable.read(path, format="ascii.ecsv")
    except (OSError, ValueError) as err:
        raise DetectionInputError(f"{path}: not a readable cuts file ({err})") from None
    missing = [c for c in (*_CUT_COLUMNS, "method", "kind") if c not in table.colnames]
    if missing:
        raise DetectionInputError(f"{path}: not a cuts file (no column {missing[0]})")
    cuts = {}
    for method in np.unique(np.asarray(table["method"], str)):
        for kind in np.unique(np.asarray(table["kind"], str)):
            rows = (np.asarray(table["method"], str) == method) & (np.asarray(table["kind"], str) == kind)
            if np.any(rows):
                part = QTable({name: table[name][rows] for name in _CUT_COLUMNS})
                part.meta["CUTS"] = str(kind)
                if all(f"{role}_prefix" in table.colnames for role in _ROLES):
                    first = np.flatnonzero(rows)[0]
                    part.meta["level"] = str(table["level"][first]) if "level" in table.colnames else "stereo"
                    part.meta["reconstructors"] = {role: str(table[f"{role}_prefix"][first]) for role in _ROLES}
                cuts.setdefault(str(method), {})[str(kind)] = part
    return cuts


def cuts_methods(cuts):
    """``{method: triple}`` of the stereo methods of a cuts file (`read_cuts`) that name their
    reconstructors: the predictions of observed runs those cuts belong to."""
    methods = {}
    for name, kinds in cuts.items():
        meta = next(iter(kinds.values())).meta
        triple = meta.get("reconstructors", {})
        if meta.get("level") == "stereo" and all(triple.get(role) for role in _ROLES):
            methods[name] = dict(triple)
    return methods


# --------------------------------------------------------------------------- report


def _order(rows, reference="reference"):
    kinds = {kind: i for i, kind in enumerate(CUT_KINDS)}
    return sorted(rows, key=lambda r: (r["method"] != reference, r["method"], kinds.get(r["cuts"], 99)))


def format_observation(rows, title=""):
    """The printed table: one line per method and kind of cuts."""
    header = "| method | cuts | N_on | N_off | α | excess | significance | γ rate /min | background rate /min |"
    lines = [f"[observation] {title}".rstrip(), header, "|" + "---|" * 9]
    for r in _order(rows):
        lines.append(
            f"| {r['method']} | {r['cuts']} | {r['n_on']:.1f} | {r['n_off']:.1f} | {r['alpha']:.3g} | "
            f"{r['excess']:.1f} | {r['significance']:.2f} | {r['gamma_rate_per_min']:.3g} | "
            f"{r['background_rate_per_min']:.3g} |"
        )
    return "\n".join(lines)


def observation_entry(rows):
    """The ``observation`` entry of ``metrics.json``: the rows, in the printed order."""
    return [dict(r) for r in _order(rows)]
