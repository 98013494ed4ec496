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
                       source_ra=83.633 * u.deg, source_dec=22.0145 * u.deg, wobble_angle=0 * u.deg, start=DEFAULT_START):
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
