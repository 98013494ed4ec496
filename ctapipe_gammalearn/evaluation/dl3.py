"""On/off detection on GADF DL3 event lists (e.g. the H.E.S.S. DR1 Crab runs), read with
gammapy's `DataStore`; the counting and statistics are those of `.detection`.

The regions follow gammapy's reflected-regions background (``ReflectedRegionsFinder``
without exclusion): the source rotated around the run's pointing (``RA_PNT``/``DEC_PNT``
at the middle of the run) in ICRS, ``"max"`` off regions found on a 0.01° map, so that
the counts equal gammapy's ``ReflectedRegionsBackgroundMaker`` on the same on region
(events in the union of the off regions, which overlap by a fraction of a pixel there).
gammapy (2.1, with ``regions`` 0.11) is imported on use only.
"""

from pathlib import Path

import astropy.units as u
import numpy as np

from .detection import (
    DEFAULT_FOV_RADIUS,
    DetectionInputError,
    _angles_or_error,
    alpha_of,
    angular_distance,
    detection_statistics,
    on_off_counts,
    reflected_positions,
    run_row,
    stack_runs,
    theta2_histograms,
)

__all__ = ["DL3_ON_RADIUS", "GAMMAPY_PIXEL_SIZE", "read_observations", "dl3_run", "dl3_runs"]

#: on radius of the H.E.S.S. DR1 point-like analyses
DL3_ON_RADIUS = 0.11 * u.deg
#: pixel size of gammapy's reflected-regions reference map
GAMMAPY_PIXEL_SIZE = 0.01 * u.deg


def _gammapy_data():
    try:
        from gammapy.data import DataStore
    except ImportError as err:
        raise DetectionInputError(f"DL3 event lists need gammapy (pip install gammapy regions): {err}") from None
    return DataStore


def read_observations(path, obs_ids=None):
    """gammapy observations of a DL3 folder with ``hdu-index``/``obs-index`` files
    (``obs_ids``: those runs only; they must be present in the folder)."""
    path = Path(path)
    if not path.is_dir():
        raise DetectionInputError(f"{path}: no such DL3 folder")
    DataStore = _gammapy_data()
    try:
        store = DataStore.from_dir(path)
    except (OSError, ValueError) as err:
        raise DetectionInputError(f"{path}: not a GADF DL3 data store ({err})") from None
    if obs_ids is None:
        obs_ids = [int(i) for i in store.obs_table["OBS_ID"]
                   if (path / _event_file(store, i)).is_file()]
    missing = [int(i) for i in obs_ids if int(i) not in set(np.asarray(store.obs_table["OBS_ID"]).tolist())]
    if missing:
        raise DetectionInputError(f"{path}: runs {missing} not in the observation index")
    absent = [int(i) for i in obs_ids if not (path / _event_file(store, i)).is_file()]
    if absent:
        raise DetectionInputError(f"{path}: event lists of runs {absent} absent")
    if not obs_ids:
        raise DetectionInputError(f"{path}: no event list")
    return store.get_observations([int(i) for i in obs_ids], required_irf=[])


def _event_file(store, obs_id):
    hdu = store.hdu_table.hdu_location(obs_id=obs_id, hdu_type="events")
    return Path(hdu.file_dir) / hdu.file_name


def dl3_run(observation, source, on_radius=DL3_ON_RADIUS, n_off="max", *, method="dl3", cuts="dl3",
            energy_min=None, energy_max=None, pixel_size=GAMMAPY_PIXEL_SIZE, fov_radius=DEFAULT_FOV_RADIUS,
            name="", theta2_bins=None):
    """On/off counts and Li & Ma significance of one gammapy observation.

    ``source``: ICRS SkyCoord; every event of the list (already gamma-like for a DL3
    file) within ``energy_min``/``energy_max`` counts, with θ < ``on_radius``.
    Returns ``(row, theta2)``: a `detection_row` with ``run_ids``, ``livetime_h``,
    ``n_off_regions`` and ``off_ra_deg``/``off_dec_deg``, and the θ² histograms.
    """
    name = name or f"obs_id {observation.obs_id}"
    pointing = observation.get_pointing_icrs(observation.tmid)
    source = source.icrs
    offset = pointing.separation(source).to(u.deg)
    if offset > u.Quantity(fov_radius, u.deg):
        raise DetectionInputError(
            f"{name}: source at {offset:.2f} from the pointing, outside the field of view "
            f"({u.Quantity(fov_radius, u.deg):.2f})")
    angles = _angles_or_error(n_off, offset, on_radius, name, pixel_size=pixel_size,
                              source_position_angle=pointing.position_angle(source))
    off_ra, off_dec = reflected_positions(pointing.ra, pointing.dec, source.ra, source.dec, angles)
    events = observation.events
    radec = events.radec.icrs
    energy = u.Quantity(events.energy, u.TeV)
    keep = np.ones(len(energy), bool)
    if energy_min is not None:
        keep &= energy >= u.Quantity(energy_min, u.TeV)
    if energy_max is not None:
        keep &= energy < u.Quantity(energy_max, u.TeV)
    if not keep.any():
        raise DetectionInputError(f"{name}: no events left after the cuts of {method}")
    ra, dec = radec.ra[keep], radec.dec[keep]
    theta_on = angular_distance(ra, dec, source.ra, source.dec)
    theta_off = angular_distance(ra[None], dec[None], off_ra[:, None], off_dec[:, None])
    # gammapy's off regions, spaced by the pixelized size, may overlap by a fraction of a
    # pixel: an event there counts once, as in gammapy
    n_on, n_off_count = on_off_counts(theta_on, theta_off, on_radius, union=pixel_size is not None)
    alpha = alpha_of(angles)
    stats = detection_statistics(n_on, n_off_count, alpha)
    row = run_row(method, cuts, stats, [observation.obs_id], observation.observation_live_time_duration,
                        len(angles))
    row["offset_deg"] = float(offset.to_value(u.deg))
    row["off_ra_deg"] = [float(v) for v in off_ra.to_value(u.deg)]
    row["off_dec_deg"] = [float(v) for v in off_dec.to_value(u.deg)]
    return row, theta2_histograms(theta_on, theta_off, alpha, theta2_bins)


def dl3_runs(path, source, obs_ids=None, **options):
    """`dl3_run` for every run of a DL3 folder and the stack of them (`stack_runs`;
    runs with different α stacked with the background-weighted α, as gammapy does).
    Returns ``(rows, stacked_row)``."""
    rows = [dl3_run(obs, source, name=f"{path}: obs_id {obs.obs_id}", **options)[0]
            for obs in read_observations(path, obs_ids)]
    return rows, stack_runs(rows, different_alpha=True)
