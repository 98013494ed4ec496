"""Pseudo-observations: observed-like DL2 runs drawn from weighted Monte Carlo DL2.

For a run of length T the number of events of each particle is Poisson with mean the
summed weights (`.detection.weight_events` for T); the events are drawn by weight, with
replacement. Each event gets a time, uniform over the run. The array tracks a sky
position in wobble (the source, by default the Crab, at the simulated offset from the
pointing); the pointing in alt/az at each event's time comes from the array location.

Every reconstructed direction keeps its offset from the pointing (position angle and
distance in alt/az): a rigid rotation of the sky carries the simulated pointing onto the
tracking pointing. Gammas are also rotated around the pointing so that their simulated
source lands on the tracked source (the field rotation of a tracking run); background
events are rotated by a random angle each, so that repeated draws of the same Monte Carlo
event do not pile up. The truth is not kept.
"""

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, offset_by, position_angle
from astropy.table import QTable, vstack
from astropy.time import Time

from .detection import angular_distance, source_altaz

__all__ = ["DEFAULT_START", "wobble_pointing", "draw_events", "place_events", "pseudo_observation"]

#: a night with the Crab near culmination at La Palma
DEFAULT_START = Time("2023-12-15T00:40:00", scale="utc")


def wobble_pointing(source_ra, source_dec, offset, wobble_angle=0 * u.deg):
    """ICRS pointing ``offset`` from the source, at position angle ``wobble_angle`` (east of north)."""
    ra, dec = offset_by(u.Quantity(source_ra, u.deg), u.Quantity(source_dec, u.deg),
                        u.Quantity(wobble_angle, u.deg), u.Quantity(offset, u.deg))
    return u.Quantity(ra, u.deg), u.Quantity(dec, u.deg)


def draw_events(events, rng, weight="weight"):
    """Poisson(Σ weights) rows of ``events`` drawn by weight (with replacement)."""
    w = np.asarray(events[weight], float)
    w = np.where(np.isfinite(w) & (w > 0), w, 0)
    total = w.sum()
    n = rng.poisson(total) if total > 0 else 0
    if n == 0:
        return events[:0]
    return events[rng.choice(len(events), size=n, p=w / total)]


def _offsets(lon, lat, pointing_lon, pointing_lat):
    """(position angle, distance) of positions from the pointing."""
    return (position_angle(pointing_lon, pointing_lat, lon, lat).to(u.rad),
            angular_distance(lon, lat, pointing_lon, pointing_lat).to(u.rad))


def place_events(events, pointing_alt, pointing_az, rotation, geometry):
    """Moves ``geometry`` column pairs ``(alt, az)`` of ``events`` from their simulated
    pointing (``pointing_alt``/``pointing_az`` columns) onto the new pointing (per event),
    rotated by ``rotation`` (per event) around it. Returns a copy."""
    out = QTable(events, copy=True)
    sim_alt, sim_az = u.Quantity(events["pointing_alt"], u.deg), u.Quantity(events["pointing_az"], u.deg)
    for alt_col, az_col in geometry:
        alt = u.Quantity(events[alt_col], u.deg)
        az = u.Quantity(events[az_col], u.deg)
        pa, dist = _offsets(az, alt, sim_az, sim_alt)
        new_az, new_alt = offset_by(u.Quantity(pointing_az, u.deg), u.Quantity(pointing_alt, u.deg),
                                    pa + u.Quantity(rotation, u.rad), dist)
        finite = np.isfinite(alt.value) & np.isfinite(az.value)
        out[alt_col] = np.where(finite, u.Quantity(new_alt, u.deg), np.nan * u.deg)
        out[az_col] = np.where(finite, u.Quantity(new_az, u.deg) % (360 * u.deg), np.nan * u.deg)
    out["pointing_alt"] = u.Quantity(pointing_alt, u.deg)
    out["pointing_az"] = u.Quantity(pointing_az, u.deg)
    return out


def pseudo_observation(gammas, backgrounds, observation_time, location, rng, *, geometry=(("reco_alt", "reco_az"),),
                       source_ra=83.633 * u.deg, source_dec=22.0145 * u.deg, wobble_angle=0 * u.deg,
                       start=DEFAULT_START):
    """One pseudo-observed run: events of ``gammas`` (point-like, ``true_alt``/``true_az``)
    and of every table of ``backgrounds``, each with ``weight`` for ``observation_time``
    and ``pointing_alt``/``pointing_az``; ``geometry``: the (alt, az) column pairs moved.

    Returns ``(events, info)``: the drawn events in time order with ``time``,
    ``pointing_alt``/``pointing_az``, ``particle`` (0 gamma, 1 background; not for the
    output file) and new ``event_id``; ``info`` with the ICRS pointing ``pointing_ra``/
    ``pointing_dec``, ``start``, ``duration`` and the ``wobble_offset`` (the simulated one).
    """
    gammas = QTable(gammas, copy=False)
    sim_pa, sim_offset = _offsets(u.Quantity(gammas["true_az"], u.deg), u.Quantity(gammas["true_alt"], u.deg),
                                  u.Quantity(gammas["pointing_az"], u.deg), u.Quantity(gammas["pointing_alt"], u.deg))
    offset = np.median(sim_offset).to(u.deg)  # the simulated wobble offset
    gamma_pa = np.angle(np.mean(np.exp(1j * sim_pa.to_value(u.rad)))) * u.rad  # circular mean
    pointing_ra, pointing_dec = wobble_pointing(source_ra, source_dec, offset, wobble_angle)
    duration = u.Quantity(observation_time, u.h)
    parts = [(draw_events(gammas, rng), 0, gamma_pa)]
    parts += [(draw_events(QTable(b, copy=False), rng), 1, None) for b in backgrounds]
    placed = []
    for drawn, particle, gamma_pa in parts:
        if len(drawn) == 0:
            continue
        drawn = QTable(drawn, copy=True)
        times = start + rng.uniform(0, duration.to_value(u.s), len(drawn)) * u.s
        p_alt, p_az = source_altaz(pointing_ra, pointing_dec, times, location)
        if gamma_pa is not None:
            s_alt, s_az = source_altaz(source_ra, source_dec, times, location)
            rotation = position_angle(p_az, p_alt, s_az, s_alt).to(u.rad) - gamma_pa
        else:
            rotation = rng.uniform(0, 2 * np.pi, len(drawn)) * u.rad
        drawn = place_events(drawn, p_alt, p_az, rotation, geometry)
        drawn["time"] = times
        drawn["particle"] = np.full(len(drawn), particle)
        placed.append(drawn)
    if not placed:
        raise ValueError("no event drawn: the weights sum to zero")
    events = QTable(vstack(placed, metadata_conflicts="silent"))
    events = events[np.argsort(events["time"].mjd)]
    events["event_id"] = np.arange(1, len(events) + 1)
    info = {"pointing_ra": pointing_ra, "pointing_dec": pointing_dec, "start": start, "duration": duration,
            "wobble_offset": offset, "source": SkyCoord(ra=source_ra, dec=source_dec, frame="icrs")}
    return events, info


# --------------------------------------------------------------------------- DL2 files

#: shower primary id -> particle of `.detection.TARGET_SPECTRA`
PARTICLES = {0: "gamma", 101: "proton", 1: "electron"}
#: pointing samples of the monitoring table
POINTING_STEP = 10 * u.s


def subarray_dl2_nodes(path):
    """``[(group, prefix), ...]`` of the subarray DL2 tables of a file."""
    import tables
    from ctapipe.io.hdf5dataformat import DL2_SUBARRAY_GROUP

    with tables.open_file(path) as h5:
        if DL2_SUBARRAY_GROUP not in h5:
            return []
        group = h5.get_node(DL2_SUBARRAY_GROUP)
        return sorted((name, prefix) for name, node in group._v_children.items() for prefix in node._v_children)


def weighted_dl2(paths, observation_time, quality_criteria=None):
    """Subarray events of the common selection of simulated DL2 ``paths`` (one particle),
    with ``weight`` for ``observation_time`` (`TARGET_SPECTRA`) and ``pointing_alt``/``az``.

    Returns ``(events, particle)``; raises `.detection.DetectionInputError` naming the file."""
    from .detection import TARGET_SPECTRA, DetectionInputError, weight_events
    from .events import DEFAULT_QUALITY_CRITERIA, BenchmarkInputError, load_events, quality_columns, select_events
    from .sensitivity import SensitivityUnavailable, _combine, _pointing, _simulation_info

    criteria = list(DEFAULT_QUALITY_CRITERIA if quality_criteria is None else quality_criteria)
    try:
        tel, sub, _ = load_events(paths, parameter_columns=quality_columns(criteria))
        _, sub = select_events(tel, sub, criteria)
        infos = [_simulation_info(path) for path in paths]
        for path, info in zip(paths, infos):
            if info is None:
                raise DetectionInputError(f"{path}: no simulation information (/configuration/simulation/run)")
        info = _combine(infos, "input")
        alt, az = _pointing(paths, sub, range(len(paths)))
    except (BenchmarkInputError, SensitivityUnavailable) as err:
        raise DetectionInputError(str(err)) from None
    ids = set(np.unique(np.asarray(sub["true_shower_primary_id"])).tolist())
    if len(ids) != 1 or ids.pop() not in PARTICLES:
        raise DetectionInputError(f"{paths[0]}: not one particle of {sorted(PARTICLES)}: {sorted(ids)}")
    particle = PARTICLES[int(sub["true_shower_primary_id"][0])]
    sub = _filled(sub)
    sub["pointing_alt"], sub["pointing_az"] = alt, az
    return weight_events(sub, info, TARGET_SPECTRA[particle], observation_time), particle


def _filled(table):
    out = QTable(table, copy=True)
    for name in out.colnames:
        col = out[name]
        if hasattr(col, "mask"):
            fill = False if col.dtype == bool else np.nan if col.dtype.kind == "f" else 0
            out[name] = col.filled(fill)
    return out


def write_pseudo_run(path, events, info, subarray, nodes, obs_id=1):
    """A ctapipe-like DL2 file of an observed run (no /simulation): the subarray, the
    observation block (the tracked ICRS pointing, start, duration), the subarray trigger
    table (event times), the subarray DL2 tables ``nodes`` (``[(group, prefix)]``) and the
    telescopes' pointing (``/dl0/monitoring/telescope/pointing``, every `POINTING_STEP`)."""
    from astropy.table import Table
    from ctapipe.containers import CoordinateFrameType
    from ctapipe.io import write_table
    from ctapipe.io.hdf5dataformat import (
        DL0_TEL_POINTING_GROUP,
        DL1_SUBARRAY_TRIGGER_TABLE,
        DL2_SUBARRAY_GROUP,
        OBSERVATION_BLOCK_TABLE,
    )

    from .detection import source_altaz

    subarray.to_hdf(path, overwrite=True)
    block = Table()
    block["obs_id"] = [obs_id]
    block["sb_id"] = [obs_id]
    block["producer_id"] = ["ctapipe-gammalearn-pseudo-observation"]
    block["subarray_pointing_lat"] = [info["pointing_dec"].to_value(u.deg)] * u.deg
    block["subarray_pointing_lon"] = [info["pointing_ra"].to_value(u.deg)] * u.deg
    block["subarray_pointing_frame"] = [CoordinateFrameType.ICRS.value]
    block["actual_start_time"] = Time([info["start"]])
    block["actual_duration"] = [info["duration"].to_value(u.min)] * u.min
    write_table(block, path, OBSERVATION_BLOCK_TABLE, append=True)
    n = len(events)
    trigger = Table()
    trigger["obs_id"] = np.full(n, obs_id, dtype=np.int32)
    trigger["event_id"] = np.asarray(events["event_id"], dtype=np.int64)
    trigger["time"] = events["time"]
    trigger["tels_with_trigger"] = np.ones((n, len(subarray.tel)), dtype=bool)
    trigger["event_type"] = np.full(n, 32, dtype=np.int32)  # SUBARRAY
    write_table(trigger, path, DL1_SUBARRAY_TRIGGER_TABLE, append=True)
    for group, prefix in nodes:
        table = Table()
        table["obs_id"], table["event_id"] = trigger["obs_id"], trigger["event_id"]
        for name in events.colnames:
            if name.startswith(prefix + "_"):
                table[name] = events[name]
        write_table(table, path, f"{DL2_SUBARRAY_GROUP}/{group}/{prefix}", append=True)
    n_steps = int(np.ceil((info["duration"] / POINTING_STEP).to_value(u.one))) + 1
    times = info["start"] + np.arange(n_steps) * POINTING_STEP
    alt, az = source_altaz(info["pointing_ra"], info["pointing_dec"], times, subarray.reference_location,
                           max_step=None)
    for tel_id in subarray.tel:
        pointing = Table({"time": times, "azimuth": az.to(u.rad), "altitude": alt.to(u.rad)})
        write_table(pointing, path, f"{DL0_TEL_POINTING_GROUP}/tel_{tel_id:03d}", append=True)
