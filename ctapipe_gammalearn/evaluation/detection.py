"""Source detection: θ², on/off counts, excess and Li & Ma significance.

Small pure functions over astropy tables with units, in the conventions of
`.events` and `.sensitivity` (pyirf column names: ``reco_energy``,
``reco_alt``/``reco_az``, ``true_alt``/``true_az``, ``pointing_alt``/``pointing_az``,
``gammaness``, ``weight``, ``event_id``).

* Geometry (any spherical frame, lon/lat = az/alt or RA/Dec): off positions
  reflected around the pointing at the source's offset (`off_rotation_angles`,
  `reflected_positions`), θ to a position (`angular_distance`, `theta_to`).
* Statistics: `on_off_counts`, `detection_statistics` (Li & Ma 1983 eq. 17 through
  `pyirf.statistics.li_ma_significance`), `theta2_histograms`.
* Cuts per bin of reconstructed energy (`efficiency_cuts`, `threshold_cuts`,
  `best_cuts`) and their application (`apply_cuts`).
* A simulated observation from weighted Monte Carlo (`simulated_observation`) and
  observed runs without truth (`observed_run`, `stack_runs`).

Rows (`detection_row`) are dicts with keys ``method``, ``cuts``, ``n_on``, ``n_off``,
``alpha``, ``excess``, ``significance``, ``observation_time_h``,
``gamma_rate_per_min`` (excess per minute) and ``background_rate_per_min``
(α N_off per minute: the background in the on region).
"""

import operator

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, SkyCoord, angular_separation, offset_by, position_angle
from astropy.table import QTable
from astropy.time import Time
from pyirf.binning import bin_center, calculate_bin_indices, create_bins_per_decade
from pyirf.cuts import calculate_percentile_cut, evaluate_binned_cut
from pyirf.sensitivity import estimate_background
from pyirf.spectral import (
    CRAB_MAGIC_JHEAP2015,
    IRFDOC_ELECTRON_SPECTRUM,
    IRFDOC_PROTON_SPECTRUM,
    PowerLaw,
    calculate_event_weights,
)
from pyirf.statistics import li_ma_significance
from pyirf.utils import cone_solid_angle

__all__ = [
    "CUT_KINDS",
    "TARGET_SPECTRA",
    "DEFAULT_N_OFF",
    "MAX_N_OFF",
    "DEFAULT_OBSERVATION_TIME",
    "DEFAULT_ON_RADIUS",
    "DetectionInputError",
    "angular_distance",
    "theta_to",
    "source_offset",
    "off_rotation_angles",
    "reflected_positions",
    "alpha_of",
    "on_off_counts",
    "detection_statistics",
    "theta2_histograms",
    "reco_energy_bins",
    "energy_range_mask",
    "efficiency_cuts",
    "threshold_cuts",
    "best_cuts",
    "apply_cuts",
    "split_by_event_id",
    "weight_events",
    "background_in_on_region",
    "simulated_observation",
    "source_altaz",
    "observed_run",
    "stack_runs",
    "stack_theta2",
    "run_row",
    "detection_row",
]

#: the three kinds of cuts reported
CUT_KINDS = ("efficiency", "best", "threshold")
DEFAULT_N_OFF = 3
#: fixed numbers of off regions allowed (``"max"`` asks for as many as fit)
MAX_N_OFF = 5
DEFAULT_OBSERVATION_TIME = 1 * u.h
#: on radius of the ``max`` reflected regions when no θ cut is given
DEFAULT_ON_RADIUS = 0.2 * u.deg
DEFAULT_GAMMA_EFFICIENCY = 0.7
DEFAULT_THETA_CONTAINMENT = 0.68
#: beyond this offset from the pointing a source is outside the field of view
DEFAULT_FOV_RADIUS = 2.5 * u.deg
_FULL_CIRCLE = 2 * np.pi * u.rad


class DetectionInputError(ValueError):
    """Inputs that allow no detection (one-line reason naming the file)."""


def _where(name):
    return f"{name}: " if name else ""


# --------------------------------------------------------------------------- geometry


def angular_distance(lon, lat, other_lon, other_lat):
    """Great-circle distance [deg] between two (arrays of) positions."""
    return angular_separation(u.Quantity(lon, u.deg), u.Quantity(lat, u.deg),
                              u.Quantity(other_lon, u.deg), u.Quantity(other_lat, u.deg)).to(u.deg)


def theta_to(events, source_alt, source_az):
    """θ [deg] of each event's reconstructed direction (``reco_alt``/``reco_az``) to a source position."""
    return angular_distance(events["reco_az"], events["reco_alt"], source_az, source_alt)


def source_offset(pointing_lon, pointing_lat, source_lon, source_lat):
    """Offset [deg] of the source from the pointing."""
    return angular_distance(pointing_lon, pointing_lat, source_lon, source_lat)


def off_rotation_angles(n_off=DEFAULT_N_OFF, offset=None, on_radius=None, min_distance=0 * u.rad,
                        min_distance_input=0.1 * u.rad, max_regions=None, pixel_size=None,
                        source_position_angle=0 * u.deg):
    """Rotation angles around the pointing of the off positions, from the on position.

    ``n_off`` from 1 to `MAX_N_OFF`: evenly spaced with the on position,
    ``2π k / (n_off + 1)``, k = 1..n_off. ``"max"``: as many non-overlapping
    circles of radius ``on_radius`` at ``offset`` as fit, placed as gammapy's
    ``ReflectedRegionsFinder`` does without exclusion: the angular size of the on
    circle seen from the pointing, ``2 asin(sin r / sin d)``, plus ``min_distance``
    between neighbours, the first and the last at least ``min_distance_input``
    further from the on region. With ``pixel_size`` the angular size is, as in gammapy,
    the spread of the angles of the pixel centres inside the on circle on a tangent-plane
    map of that pixel size centred on the pointing (the source at ``source_position_angle``
    on it): gammapy's regions to 1e-6 deg with ``pixel_size=0.01 deg``; without it, the
    exact size.
    """
    if isinstance(n_off, str):
        if n_off != "max":
            raise DetectionInputError(f"off regions must be 1 to {MAX_N_OFF} or 'max', not {n_off!r}")
        if offset is None or on_radius is None:
            raise DetectionInputError("'max' off regions need the source offset and the on radius")
        offset, on_radius = u.Quantity(offset, u.deg), u.Quantity(on_radius, u.deg)
        if offset <= on_radius:
            raise DetectionInputError(
                f"source offset {offset:.3f} within the on radius {on_radius:.3f}: no reflected region")
        if pixel_size is None:
            size = (2 * np.arcsin(np.sin(on_radius) / np.sin(offset))).to(u.rad)
        else:
            size = _pixelized_angular_size(offset, on_radius, u.Quantity(pixel_size, u.deg),
                                           u.Quantity(source_position_angle, u.deg))
        step = size + u.Quantity(min_distance, u.rad)
        angle_max = _FULL_CIRCLE - step - u.Quantity(min_distance_input, u.rad)
        angles = []
        angle = step + u.Quantity(min_distance_input, u.rad)
        while angle < angle_max and (max_regions is None or len(angles) < max_regions):
            angles.append(angle.to_value(u.rad))
            angle = angle + step
        if not angles:
            raise DetectionInputError(f"no off region of radius {on_radius:.3f} fits at offset {offset:.3f}")
        return u.Quantity(angles, u.rad)
    n_off = int(n_off)
    if not 1 <= n_off <= MAX_N_OFF:
        raise DetectionInputError(f"off regions must be 1 to {MAX_N_OFF} or 'max', not {n_off}")
    return (_FULL_CIRCLE * np.arange(1, n_off + 1) / (n_off + 1)).to(u.rad)


def _angles_or_error(n_off, offset, on_radius, name, **options):
    """`off_rotation_angles`, refusing a source so close to the pointing that the off
    regions would overlap the on region; errors name the file."""
    offset, on_radius = u.Quantity(offset, u.deg), u.Quantity(on_radius, u.deg)
    if offset <= on_radius:
        raise DetectionInputError(
            f"{_where(name)}source {offset:.3f} from the pointing, within the on radius {on_radius:.3f}: "
            "no off region")
    try:
        return off_rotation_angles(n_off, offset=offset, on_radius=on_radius, **options)
    except DetectionInputError as err:
        raise DetectionInputError(f"{_where(name)}{err}") from None


def _pixelized_angular_size(offset, on_radius, pixel_size, position_angle_):
    """Angular size, seen from the pointing, of the pixel centres inside the on circle on a
    tangent-plane map centred on the pointing: ``4 offset + 0.3 deg`` wide (gammapy's
    reference map of reflected regions), pixel centres symmetric around the pointing."""
    npix = int(np.rint(((4 * offset + 0.3 * u.deg) / pixel_size).to_value(u.one)))
    step = pixel_size.to_value(u.rad)
    # source in the tangent plane (east, north), radians
    rho = np.tan(offset.to_value(u.rad))
    pa = position_angle_.to_value(u.rad)
    xs, ys = rho * np.sin(pa), rho * np.cos(pa)
    # half width of a box around the on circle on the tangent plane (radius stretched ≤ sec²)
    half = 1.2 * np.tan(on_radius.to_value(u.rad)) / np.cos((offset + on_radius).to_value(u.rad)) ** 2 + 2 * step
    k = np.arange(npix) - (npix - 1) / 2
    kx = k[np.abs(k * step - xs) < half]
    ky = k[np.abs(k * step - ys) < half]
    x, y = np.meshgrid(kx * step, ky * step)
    # inside: angular distance to the source below the radius (inverse gnomonic)
    d_pix = np.arctan(np.hypot(x, y))
    pa_pix = np.arctan2(x, y)
    d_src = offset.to_value(u.rad)
    cos_sep = np.cos(d_pix) * np.cos(d_src) + np.sin(d_pix) * np.sin(d_src) * np.cos(pa_pix - pa)
    inside = cos_sep > np.cos(on_radius.to_value(u.rad))
    angles = pa_pix[inside]
    if len(angles) == 0:
        return 0 * u.rad
    size = np.ptp(angles)
    if size > np.pi:
        size = np.ptp(np.mod(angles, 2 * np.pi))
    return size * u.rad


def reflected_positions(pointing_lon, pointing_lat, source_lon, source_lat, angles):
    """Off positions: the source rotated around the pointing by each of ``angles``.

    Same offset from the pointing as the source; inputs may be arrays (one pointing
    and source position per event). Returns ``(lon, lat)`` [deg] of shape
    ``(len(angles),) + broadcast shape``; the position angle grows with the angle
    (east of north in RA/Dec, as gammapy's pixel rotation on a sky map).
    """
    plon, plat = u.Quantity(pointing_lon, u.deg), u.Quantity(pointing_lat, u.deg)
    slon, slat = u.Quantity(source_lon, u.deg), u.Quantity(source_lat, u.deg)
    pa = position_angle(plon, plat, slon, slat)
    sep = angular_separation(plon, plat, slon, slat)
    angles = u.Quantity(angles, u.rad).reshape((-1,) + (1,) * np.ndim(pa))
    lon, lat = offset_by(plon, plat, pa + angles, sep)
    return u.Quantity(lon, u.deg), u.Quantity(lat, u.deg)


def alpha_of(angles):
    """α = 1 / number of off regions (all of the on region's size)."""
    return 1.0 / len(angles)


# --------------------------------------------------------------------------- statistics


def on_off_counts(theta_on, theta_off, theta_cut, weights=None, union=False):
    """``(n_on, n_off)``: (weighted) events with θ < ``theta_cut`` around the source and
    around any off position, summed over the off positions.

    ``theta_off`` has shape ``(n_regions, n_events)``; ``theta_cut`` is a scalar
    or one value per event (a cut per energy bin evaluated on each event). With
    ``union`` an event in two overlapping off regions counts once (gammapy counts the
    events in the union of its off regions, which overlap slightly on its pixel map).
    """
    theta_on = u.Quantity(theta_on, u.deg)
    theta_off = u.Quantity(theta_off, u.deg)
    theta_cut = u.Quantity(theta_cut, u.deg)
    w = np.ones(theta_on.shape) if weights is None else np.asarray(weights, dtype=float)
    in_on = theta_on < theta_cut
    in_off = theta_off < theta_cut
    if union:
        return float(np.sum(w[in_on])), float(np.sum(w[np.any(in_off, axis=0)]))
    return float(np.sum(w[in_on])), float(np.sum(w * in_off))


def detection_statistics(n_on, n_off, alpha):
    """``{"n_on", "n_off", "alpha", "excess", "significance"}``: excess N_on − α N_off,
    significance Li & Ma (1983) eq. 17 (pyirf: 0 where the excess is negative)."""
    n_on, n_off, alpha = float(n_on), float(n_off), float(alpha)
    if n_on + n_off > 0:
        significance = float(li_ma_significance(n_on, n_off, alpha))
    else:
        significance = 0.0
    return {"n_on": n_on, "n_off": n_off, "alpha": alpha, "excess": n_on - alpha * n_off, "significance": significance}


def theta2_histograms(theta_on, theta_off, alpha, bins=None, weights=None):
    """θ² histograms of the on events and of the off events (summed over the off
    positions, scaled by α). Returns a QTable ``theta2_low``, ``theta2_high`` [deg²],
    ``n_on``, ``n_off`` (scaled), ``n_off_raw``, ``excess``."""
    bins = np.linspace(0, 0.5, 51) * u.deg**2 if bins is None else u.Quantity(bins, u.deg**2)
    theta_on = u.Quantity(theta_on, u.deg)
    theta_off = u.Quantity(theta_off, u.deg)
    w = np.ones(theta_on.shape) if weights is None else np.asarray(weights, dtype=float)
    edges = bins.to_value(u.deg**2)
    n_on, _ = np.histogram((theta_on**2).to_value(u.deg**2), edges, weights=w)
    t2_off = (theta_off**2).to_value(u.deg**2)
    n_off, _ = np.histogram(t2_off.ravel(), edges, weights=np.broadcast_to(w, t2_off.shape).ravel())
    table = QTable()
    table["theta2_low"] = bins[:-1]
    table["theta2_high"] = bins[1:]
    table["n_on"] = n_on.astype(float)
    table["n_off"] = alpha * n_off
    table["n_off_raw"] = n_off.astype(float)
    table["excess"] = table["n_on"] - table["n_off"]
    return table


# --------------------------------------------------------------------------- cuts


@u.quantity_input(energy_min=u.TeV, energy_max=u.TeV)
def reco_energy_bins(energy_min=0.01 * u.TeV, energy_max=100 * u.TeV, bins_per_decade=5):
    """Log-spaced reconstructed-energy bin edges (pyirf)."""
    return create_bins_per_decade(energy_min, energy_max, bins_per_decade)


def energy_range_mask(reco_energy, energy_min=None, energy_max=None):
    """Events with ``energy_min <= reco_energy < energy_max`` (either bound optional)."""
    reco_energy = u.Quantity(reco_energy, u.TeV)
    mask = np.isfinite(reco_energy.value)
    if energy_min is not None:
        mask &= reco_energy >= u.Quantity(energy_min, u.TeV)
    if energy_max is not None:
        mask &= reco_energy < u.Quantity(energy_max, u.TeV)
    return mask


def _global_percentile(values, percentile, fill):
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return np.percentile(values, percentile) if len(values) else fill


def _cut_table(bins, gh_cut, theta_cut, n_events, kind):
    table = QTable()
    table["low"] = bins[:-1]
    table["high"] = bins[1:]
    table["center"] = bin_center(bins)
    table["gh_cut"] = np.asarray(gh_cut, dtype=float)
    table["theta_cut"] = u.Quantity(theta_cut, u.deg)
    table["n_events"] = np.asarray(n_events)
    table.meta["CUTS"] = kind
    return table


def _theta_cuts(gammas, bins, gh_cut_table, theta_containment, on_radius, min_events):
    if on_radius is not None:
        return np.full(len(bins) - 1, u.Quantity(on_radius, u.deg).value) * u.deg
    passed = evaluate_binned_cut(np.asarray(gammas["gammaness"], float), gammas["reco_energy"],
                                 _as_pyirf(gh_cut_table, "gh_cut"), operator.ge)
    theta = u.Quantity(gammas["theta"][passed], u.deg)
    fill = _global_percentile(theta.value, 100 * theta_containment, np.nan) * u.deg
    table = calculate_percentile_cut(theta, gammas["reco_energy"][passed], bins, fill_value=fill,
                                     percentile=100 * theta_containment, min_events=min_events)
    return table["cut"].to(u.deg)


def _as_pyirf(cuts, column):
    """A pyirf cut table (``low``, ``high``, ``center``, ``cut``) from one column of ours."""
    table = QTable()
    for name in ("low", "high", "center"):
        table[name] = cuts[name]
    table["cut"] = cuts[column]
    return table


def efficiency_cuts(gammas, bins, gamma_efficiency=DEFAULT_GAMMA_EFFICIENCY,
                    theta_containment=DEFAULT_THETA_CONTAINMENT, on_radius=None, min_events=10):
    """Per reconstructed-energy bin: the gammaness cut keeping ``gamma_efficiency`` of the
    gammas, then the θ cut containing ``theta_containment`` of those left (pyirf's
    `calculate_percentile_cut`, as lstchain's efficiency cuts), or ``on_radius`` in
    place of the containment. Bins with fewer than ``min_events`` gammas get the cut
    of all gammas together.

    ``gammas``: columns ``reco_energy``, ``gammaness``, ``theta`` (to the true source).
    Returns a QTable ``low``, ``high``, ``center``, ``gh_cut``, ``theta_cut``, ``n_events``.
    """
    gammaness = np.asarray(gammas["gammaness"], dtype=float)
    percentile = 100 * (1 - gamma_efficiency)
    fill = _global_percentile(gammaness, percentile, np.nan)
    gh = calculate_percentile_cut(gammaness, gammas["reco_energy"], bins, fill_value=fill,
                                  percentile=percentile, min_events=min_events)
    table = _cut_table(bins, gh["cut"], np.zeros(len(bins) - 1) * u.deg, gh["n_events"], "efficiency")
    table["theta_cut"] = _theta_cuts(gammas, bins, table, theta_containment, on_radius, min_events)
    return table


def threshold_cuts(gammas, bins, gammaness_threshold=0.5, theta_containment=DEFAULT_THETA_CONTAINMENT,
                   on_radius=None, min_events=10):
    """One global gammaness cut, then per bin the θ cut containing ``theta_containment`` of
    the gammas passing it (or ``on_radius``). Same table as `efficiency_cuts`."""
    index, valid = calculate_bin_indices(gammas["reco_energy"], bins)
    n_events = np.bincount(index[valid], minlength=len(bins) - 1)[: len(bins) - 1]
    table = _cut_table(bins, np.full(len(bins) - 1, float(gammaness_threshold)),
                       np.zeros(len(bins) - 1) * u.deg, n_events, "threshold")
    table["theta_cut"] = _theta_cuts(gammas, bins, table, theta_containment, on_radius, min_events)
    return table


def apply_cuts(events, cuts, gammaness="gammaness"):
    """``(passed gammaness cut, θ cut per event)``: the gammaness mask and the θ cut of
    each event's reconstructed-energy bin (NaN outside the bins, where nothing passes)."""
    gh_pass = evaluate_binned_cut(np.asarray(events[gammaness], float), events["reco_energy"],
                                  _as_pyirf(cuts, "gh_cut"), operator.ge)
    index, valid = calculate_bin_indices(events["reco_energy"], u.Quantity(np.append(cuts["low"], cuts["high"][-1])))
    theta_cut = np.full(len(events), np.nan)
    theta_cut[valid] = u.Quantity(cuts["theta_cut"], u.deg).value[index[valid]]
    return np.asarray(gh_pass, bool) & valid, theta_cut * u.deg


def split_by_event_id(events):
    """``(optimise, count)`` masks: even event ids optimise the cuts, odd ones are counted."""
    event_id = np.asarray(events["event_id"], dtype=np.int64)
    return event_id % 2 == 0, event_id % 2 == 1


# --------------------------------------------------------------------------- simulated observation


def weight_events(events, simulated_info, target_spectrum, observation_time=DEFAULT_OBSERVATION_TIME):
    """Events with a ``weight`` column: expected events of each simulated one in
    ``observation_time`` for ``target_spectrum`` (pyirf `calculate_event_weights`, the
    simulated spectrum from `PowerLaw.from_simulation`). Diffuse targets are per sr."""
    simulated = PowerLaw.from_simulation(simulated_info, obstime=observation_time)
    out = QTable(events, copy=True)
    out["weight"] = calculate_event_weights(u.Quantity(out["true_energy"], u.TeV), target_spectrum, simulated)
    return out


def _reco_fov_offset(events):
    return angular_distance(events["reco_az"], events["reco_alt"], events["pointing_az"], events["pointing_alt"])


def background_in_on_region(background, bins, gh_cuts_table, theta_cuts_table, ring):
    """Expected (weighted) background per reconstructed-energy bin in an on region of
    radius the θ cut of the bin, from its density per solid angle in the FoV ``ring``
    ``(min, max)`` around the pointing (pyirf `estimate_background` with α = 1).

    ``background``: columns ``reco_energy``, ``gammaness``, reco/pointing alt/az, ``weight``.
    Returns ``(n_weighted, n_raw_in_ring)`` per bin.
    """
    bkg = QTable(background, copy=False)
    passed = evaluate_binned_cut(np.asarray(bkg["gammaness"], float), bkg["reco_energy"],
                                 _as_pyirf(gh_cuts_table, "gh_cut"), operator.ge)
    bkg = bkg[passed]
    table = QTable({"reco_energy": bkg["reco_energy"], "weight": np.asarray(bkg["weight"], float),
                    "reco_source_fov_offset": _reco_fov_offset(bkg)})
    theta = _as_pyirf(theta_cuts_table, "theta_cut")
    estimate = estimate_background(table, bins, theta, alpha=1.0, fov_offset_min=ring[0], fov_offset_max=ring[1])
    return np.asarray(estimate["n_weighted"], float), _raw_in_ring(table, bins, ring)


def _raw_in_ring(table, bins, ring):
    offset = table["reco_source_fov_offset"]
    inside = (offset >= ring[0]) & (offset < ring[1])
    index, valid = calculate_bin_indices(table["reco_energy"], bins)
    valid &= np.asarray(inside)
    return np.bincount(index[valid], minlength=len(bins) - 1)[: len(bins) - 1]


def _local_offsets(events):
    """Reco minus true direction in a flat frame around the true direction [deg]: (dx, dy)."""
    alt = u.Quantity(events["true_alt"], u.deg)
    dx = ((u.Quantity(events["reco_az"], u.deg) - u.Quantity(events["true_az"], u.deg) + 180 * u.deg)
          % (360 * u.deg) - 180 * u.deg) * np.cos(alt)
    dy = u.Quantity(events["reco_alt"], u.deg) - alt
    return dx.to_value(u.deg), dy.to_value(u.deg)


def _off_vectors(wobble_offset, angles):
    """Off positions minus the source position, flat, for a source at ``wobble_offset`` along +y."""
    w = u.Quantity(wobble_offset, u.deg).to_value(u.deg)
    a = u.Quantity(angles, u.rad).to_value(u.rad)
    return -w * np.sin(a), w * np.cos(a) - w


def _signal_counts(gammas, theta_cut, off_vectors):
    """Weighted gammas in the on region and summed over the off regions (spill-over),
    each with the event's θ cut, the off regions placed relative to the true source."""
    dx, dy = _local_offsets(gammas)
    cut = u.Quantity(theta_cut, u.deg).to_value(u.deg)
    w = np.asarray(gammas["weight"], float)
    theta_on = np.hypot(dx, dy)
    theta_off = np.hypot(dx[None] - off_vectors[0][:, None], dy[None] - off_vectors[1][:, None])
    n_on, n_off = on_off_counts(theta_on * u.deg, theta_off * u.deg, cut * u.deg, w)
    return n_on, n_off, theta_on * u.deg, theta_off * u.deg


def best_cuts(gammas, background, bins, alpha, ring, gh_efficiencies=None, theta_containments=None,
              on_radius=None, min_events=10, min_background_events=10):
    """The cuts maximising the Li & Ma significance of the whole observation: one global
    pair (gammaness efficiency, θ containment) chosen among ``gh_efficiencies`` ×
    ``theta_containments`` (or ``on_radius``), giving per reconstructed-energy bin the
    cuts of `efficiency_cuts` for that pair. The significance is that of the expected
    counts summed over the bins (weighted gammas within the θ cut, background density of
    the ``ring`` scaled to the on and off regions); a pair needs ``min_background_events``
    background events left in the ring, so that cuts rejecting all the (sparse)
    simulated background do not win.

    A global pair rather than one per bin: the per-bin optimum maximises each bin's
    significance, not that of the summed counts, which loose low-energy bins ruin.
    Use events different from those counted (see `split_by_event_id`); ``gammas`` need
    ``theta`` and ``weight``, ``background`` as in `background_in_on_region`.
    Returns the table of `efficiency_cuts` with ``gamma_efficiency``,
    ``theta_containment`` and ``significance`` (of the optimisation sample) in its meta.
    """
    gh_efficiencies = np.round(np.arange(0.1, 0.96, 0.05), 4) if gh_efficiencies is None else gh_efficiencies
    theta_containments = ((0.4, 0.5, 0.6, 0.68, 0.75, 0.8, 0.9) if theta_containments is None
                          else theta_containments)
    if on_radius is not None:
        theta_containments = (DEFAULT_THETA_CONTAINMENT,)
    weight = np.asarray(gammas["weight"], float)
    best, best_sig = None, -np.inf
    for eff in gh_efficiencies:
        for containment in theta_containments:
            cuts = efficiency_cuts(gammas, bins, eff, containment, on_radius=on_radius, min_events=min_events)
            passed, theta_cut = apply_cuts(gammas, cuts)
            passed &= u.Quantity(gammas["theta"], u.deg) < theta_cut
            signal = float(np.sum(weight[passed]))
            bkg_on, raw = background_in_on_region(background, bins, cuts, cuts, ring)
            if raw.sum() < min_background_events:
                continue
            bkg_on = float(np.nansum(bkg_on))
            sig = detection_statistics(signal + bkg_on, bkg_on / alpha, alpha)["significance"]
            if sig > best_sig:
                best, best_sig = cuts, sig
                best.meta.update(gamma_efficiency=float(eff), theta_containment=float(containment))
    if best is None:
        raise DetectionInputError(
            f"fewer than {min_background_events} background events in the ring after any cut: no best cuts")
    best.meta["CUTS"] = "best"
    best.meta["significance"] = float(best_sig)
    return best


def _prepare_gammas(gammas, name):
    gammas = QTable(gammas, copy=False)
    offset = source_offset(gammas["pointing_az"], gammas["pointing_alt"], gammas["true_az"], gammas["true_alt"])
    if len(gammas) == 0:
        raise DetectionInputError(f"{_where(name)}no gamma event")
    spread = np.ptp(offset.to_value(u.deg))
    if spread > 0.05:
        raise DetectionInputError(
            f"{_where(name)}gammas not point-like: true offsets from the pointing spread over {spread:.2f} deg")
    out = QTable(gammas, copy=True)
    out["theta"] = theta_to(out, out["true_alt"], out["true_az"])
    return out, float(np.median(offset.to_value(u.deg))) * u.deg


def _scaled(table, mask):
    """Rows ``mask`` with weights scaled so that they stand for the whole sample."""
    out = table[mask]
    if "weight" in out.colnames and mask.sum() > 0:
        out["weight"] = np.asarray(out["weight"], float) * (len(table) / mask.sum())
    return out


def simulated_observation(method, gammas, background, bins=None, *, observation_time=DEFAULT_OBSERVATION_TIME,
                          n_off=DEFAULT_N_OFF, on_radius=None, wobble_offset=None, energy_min=None,
                          energy_max=None, gammaness_threshold=0.5, ring_width=1.0 * u.deg,
                          fov_radius=DEFAULT_FOV_RADIUS, kinds=CUT_KINDS, name="", theta2_bins=None):
    """Expected detection of a point-like source by one reconstructor in ``observation_time``.

    ``gammas``: point-like gamma test events (columns ``true_energy``, ``true_alt``/``az``,
    ``reco_energy``, ``reco_alt``/``az``, ``gammaness``, ``pointing_alt``/``az``, ``event_id``,
    ``weight`` for ``observation_time``: see `weight_events` with ``CRAB_MAGIC_JHEAP2015``);
    ``background``: diffuse protons (and electrons, stacked) weighted alike with
    ``IRFDOC_PROTON_SPECTRUM`` / ``IRFDOC_ELECTRON_SPECTRUM``.

    The source sits at ``wobble_offset`` from the pointing (default: the simulated offset;
    a simulation at the pointing needs one); the off regions are `reflected_positions`
    (``n_off`` or ``"max"``); gammas are counted in the on and off regions from their
    reconstructed minus true direction, the background from its density per solid angle
    over the FoV ring ``wobble_offset ± ring_width / 2``. Cuts are derived from the
    even event ids and counts from the odd ones (`split_by_event_id`), weights rescaled.

    Returns ``(rows, details)``: one `detection_row` per kind of cuts, and per kind
    ``{"cuts": QTable, "theta2": QTable}``.
    """
    bins = reco_energy_bins() if bins is None else bins
    gammas, simulated_offset = _prepare_gammas(gammas, name)
    wobble = u.Quantity(wobble_offset, u.deg) if wobble_offset is not None else simulated_offset
    if wobble > u.Quantity(fov_radius, u.deg):
        raise DetectionInputError(
            f"{_where(name)}source at {wobble:.2f} from the pointing, outside the field of view "
            f"({u.Quantity(fov_radius, u.deg):.2f})")
    radius_for_max = u.Quantity(on_radius, u.deg) if on_radius is not None else DEFAULT_ON_RADIUS
    angles = _angles_or_error(n_off, wobble, radius_for_max, name)
    alpha = alpha_of(angles)
    vectors = _off_vectors(wobble, angles)
    ring = (max(wobble - ring_width / 2, 0 * u.deg), wobble + ring_width / 2)

    gammas = gammas[energy_range_mask(gammas["reco_energy"], energy_min, energy_max)]
    background = QTable(background, copy=False)
    background = background[energy_range_mask(background["reco_energy"], energy_min, energy_max)]
    if len(gammas) == 0:
        raise DetectionInputError(f"{_where(name)}no gamma event in the reconstructed-energy range")
    g_opt, g_count = split_by_event_id(gammas)
    gammas_opt, gammas_count = _scaled(gammas, g_opt), _scaled(gammas, g_count)
    b_opt, b_count = split_by_event_id(background) if "event_id" in background.colnames else (None, None)
    bkg_opt = _scaled(background, b_opt) if b_opt is not None else background
    bkg_count = _scaled(background, b_count) if b_count is not None else background
    minutes = u.Quantity(observation_time, u.h).to_value(u.min)

    rows, details = [], {}
    for kind in kinds:
        if kind == "efficiency":
            cuts = efficiency_cuts(gammas_opt, bins, on_radius=on_radius)
        elif kind == "threshold":
            cuts = threshold_cuts(gammas_opt, bins, gammaness_threshold, on_radius=on_radius)
        elif kind == "best":
            try:
                cuts = best_cuts(gammas_opt, bkg_opt, bins, alpha, ring, on_radius=on_radius)
            except DetectionInputError as err:
                raise DetectionInputError(f"{_where(name)}{method}: {err}") from None
        else:
            raise DetectionInputError(f"unknown kind of cuts {kind!r} (one of {CUT_KINDS})")
        gh_pass, theta_cut = apply_cuts(gammas_count, cuts)
        selected = gammas_count[gh_pass]
        signal_on, signal_off, t_on, t_off = _signal_counts(selected, theta_cut[gh_pass], vectors)
        bkg_on_bins, _ = background_in_on_region(bkg_count, bins, cuts, cuts, ring)
        bkg_on = float(np.nansum(bkg_on_bins))
        if signal_on + bkg_on <= 0:
            raise DetectionInputError(f"{_where(name)}no events left after the {kind} cuts of {method}")
        n_on = signal_on + bkg_on
        n_off = signal_off + bkg_on / alpha
        stats = detection_statistics(n_on, n_off, alpha)
        rows.append(detection_row(method, kind, stats, observation_time,
                                  gamma_rate_per_min=stats["excess"] / minutes,
                                  background_rate_per_min=alpha * n_off / minutes,
                                  n_off_regions=len(angles), wobble_offset_deg=float(wobble.to_value(u.deg))))
        theta2 = theta2_histograms(t_on, t_off, alpha, theta2_bins, np.asarray(selected["weight"], float))
        theta2 = _add_flat_background(theta2, bkg_count, cuts, ring, alpha, len(angles))
        details[kind] = {"cuts": cuts, "theta2": theta2}
    return rows, details


def _add_flat_background(theta2, background, cuts, ring, alpha, n_regions):
    """Adds to a θ² histogram of gammas the background, flat in θ² (uniform per solid angle)
    at its density after the gammaness cuts, in the on region and in each off region."""
    bkg = QTable(background, copy=False)
    passed = evaluate_binned_cut(np.asarray(bkg["gammaness"], float), bkg["reco_energy"],
                                 _as_pyirf(cuts, "gh_cut"), operator.ge)
    bkg = bkg[passed]
    offset = _reco_fov_offset(bkg)
    inside = (offset >= ring[0]) & (offset < ring[1])
    density = np.sum(np.asarray(bkg["weight"], float)[np.asarray(inside)]) / (
        cone_solid_angle(ring[1]) - cone_solid_angle(ring[0])).to_value(u.sr)
    low = np.sqrt(u.Quantity(theta2["theta2_low"], u.deg**2))
    high = np.sqrt(u.Quantity(theta2["theta2_high"], u.deg**2))
    per_bin = density * (cone_solid_angle(high) - cone_solid_angle(low)).to_value(u.sr)
    out = QTable(theta2, copy=True)
    out["n_on"] = out["n_on"] + per_bin
    out["n_off_raw"] = out["n_off_raw"] + n_regions * per_bin
    out["n_off"] = alpha * out["n_off_raw"]
    out["excess"] = out["n_on"] - out["n_off"]
    return out


# --------------------------------------------------------------------------- observed runs


def source_altaz(ra, dec, times, location, max_step=10 * u.s):
    """Alt/az [deg] of an ICRS position at each event's time, seen from ``location``.

    The transformation is exact at times at most ``max_step`` apart over the run and
    linearly interpolated in between (far below 1e-4 deg off for ``10 s``); with
    ``max_step=None`` it is done for every event.
    """
    times = Time(times)
    source = SkyCoord(ra=u.Quantity(ra, u.deg), dec=u.Quantity(dec, u.deg), frame="icrs")
    mjd = np.atleast_1d(times.mjd)
    span = (np.max(mjd) - np.min(mjd)) * u.day if len(mjd) else 0 * u.s
    n_grid = 2 + int(np.ceil((span / max_step).to_value(u.one))) if max_step is not None else None
    if n_grid is None or n_grid >= len(mjd):
        altaz = source.transform_to(AltAz(obstime=times, location=location))
        return altaz.alt.to(u.deg), altaz.az.to(u.deg)
    grid = Time(np.linspace(np.min(mjd), np.max(mjd), n_grid), format="mjd", scale=times.scale)
    altaz = source.transform_to(AltAz(obstime=grid, location=location))
    alt = np.interp(mjd, grid.mjd, altaz.alt.to_value(u.deg))
    az = np.interp(mjd, grid.mjd, np.unwrap(altaz.az.to_value(u.rad))) % (2 * np.pi)
    return alt.reshape(np.shape(times.mjd)) * u.deg, np.degrees(az).reshape(np.shape(times.mjd)) * u.deg


def observed_run(method, events, source_ra, source_dec, location, cuts=None, *, run_id=None, livetime=None,
                 n_off=DEFAULT_N_OFF, on_radius=None, energy_min=None, energy_max=None,
                 fov_radius=DEFAULT_FOV_RADIUS, name="", theta2_bins=None, kind=None):
    """On/off counts and significance of one observed run (no truth).

    ``events``: ``reco_alt``/``reco_az``, ``time`` (astropy Time), ``pointing_alt``/``az``
    per event, and ``reco_energy``/``gammaness`` when ``cuts`` (a table of `efficiency_cuts`
    etc., e.g. derived from simulations) are applied. Without ``cuts`` every event is
    kept and ``on_radius`` is the θ cut. The source position is computed in alt/az at
    each event's time; the off positions are reflected around each event's pointing
    (``n_off`` or ``"max"``, the latter from the median offset and ``on_radius``, or
    `DEFAULT_ON_RADIUS` with cuts, as `simulated_observation` does).

    ``kind`` labels the row (default: the ``CUTS`` of the cuts' meta, else ``threshold``).
    Returns ``(row, theta2)``: a `detection_row` with ``run_ids`` and ``livetime_h``,
    and the θ² histograms (add those of several runs with `stack_theta2`).
    """
    if kind is None:
        kind = cuts.meta.get("CUTS", "threshold") if cuts is not None else "threshold"
    events = QTable(events, copy=False)
    if len(events) == 0:
        raise DetectionInputError(f"{_where(name)}no events")
    src_alt, src_az = source_altaz(source_ra, source_dec, events["time"], location)
    offset = source_offset(events["pointing_az"], events["pointing_alt"], src_az, src_alt)
    median_offset = float(np.median(offset.to_value(u.deg))) * u.deg
    if median_offset > u.Quantity(fov_radius, u.deg):
        raise DetectionInputError(
            f"{_where(name)}source at {median_offset:.2f} from the pointing, outside the field of view "
            f"({u.Quantity(fov_radius, u.deg):.2f})")
    if cuts is None:
        if on_radius is None:
            raise DetectionInputError(f"{_where(name)}observed run needs cuts or an on radius")
        keep = energy_range_mask(events["reco_energy"], energy_min, energy_max) if "reco_energy" in events.colnames \
            else np.ones(len(events), bool)
        theta_cut = np.full(len(events), u.Quantity(on_radius, u.deg).value) * u.deg
        radius_for_max = u.Quantity(on_radius, u.deg)
    else:
        keep, theta_cut = apply_cuts(events, cuts)
        keep &= energy_range_mask(events["reco_energy"], energy_min, energy_max)
        if on_radius is not None:  # a fixed θ cut in place of the cuts' own
            theta_cut = np.full(len(events), u.Quantity(on_radius, u.deg).value) * u.deg
        # as in `simulated_observation`: the regions of 'max' sized by the fixed θ cut, else
        # by `DEFAULT_ON_RADIUS`, so that both give the same α
        radius_for_max = u.Quantity(on_radius if on_radius is not None else DEFAULT_ON_RADIUS, u.deg)
    if not np.any(keep):
        raise DetectionInputError(f"{_where(name)}no events left after the cuts of {method}")
    angles = _angles_or_error(n_off, median_offset, radius_for_max, name)
    alpha = alpha_of(angles)
    sel = events[keep]
    theta_on = angular_distance(sel["reco_az"], sel["reco_alt"], src_az[keep], src_alt[keep])
    off_az, off_alt = reflected_positions(sel["pointing_az"], sel["pointing_alt"], src_az[keep], src_alt[keep], angles)
    theta_off = angular_distance(sel["reco_az"][None], sel["reco_alt"][None], off_az, off_alt)
    n_on, n_off_count = on_off_counts(theta_on, theta_off, theta_cut[keep])
    stats = detection_statistics(n_on, n_off_count, alpha)
    row = run_row(method, kind, stats, [] if run_id is None else [run_id], livetime, len(angles))
    return row, theta2_histograms(theta_on, theta_off, alpha, theta2_bins)


def run_row(method, kind, stats, run_ids, livetime, n_regions):
    """`detection_row` of observed runs: rates per minute of live time, ``run_ids``,
    ``livetime_h`` and ``n_off_regions``."""
    livetime_h = np.nan if livetime is None else u.Quantity(livetime, u.h).to_value(u.h)
    minutes = livetime_h * 60
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma_rate = stats["excess"] / minutes
        bkg_rate = stats["alpha"] * stats["n_off"] / minutes
    row = detection_row(method, kind, stats, livetime_h * u.h, gamma_rate_per_min=float(gamma_rate),
                        background_rate_per_min=float(bkg_rate), n_off_regions=n_regions)
    row["run_ids"] = [int(r) for r in run_ids]
    row["livetime_h"] = float(livetime_h)
    return row


def stack_runs(rows, different_alpha=False):
    """One row for several runs of one method and cuts: counts and live times summed,
    the significance of the summed counts.

    Runs must share α unless ``different_alpha``: then α is the background-weighted
    ``Σ α_i N_off,i / Σ N_off,i`` (as gammapy stacks on/off datasets), so that
    α N_off is the summed background of the runs.
    """
    if not rows:
        raise DetectionInputError("no run to stack")
    alphas = [row["alpha"] for row in rows]
    n_off = sum(r["n_off"] for r in rows)
    if len({round(a, 12) for a in alphas}) > 1:
        if not different_alpha:
            raise DetectionInputError(
                f"runs with different α cannot be stacked by summing counts: {sorted(set(alphas))}")
        alpha = sum(r["alpha"] * r["n_off"] for r in rows) / n_off if n_off > 0 else float(np.mean(alphas))
    else:
        alpha = alphas[0]
    stats = detection_statistics(sum(r["n_on"] for r in rows), n_off, alpha)
    run_ids = [run for row in rows for run in row.get("run_ids", [])]
    livetime = sum(row["livetime_h"] for row in rows) * u.h
    regions = {row.get("n_off_regions") for row in rows}
    return run_row(rows[0]["method"], rows[0]["cuts"], stats, run_ids, livetime,
                         regions.pop() if len(regions) == 1 else None)


def stack_theta2(tables):
    """Sum of θ² histograms of several runs on the same bins: on counts, raw off counts,
    and off counts scaled by each run's α (the summed background)."""
    if not tables:
        raise DetectionInputError("no θ² histogram to stack")
    out = QTable(tables[0], copy=True)
    for other in tables[1:]:
        if not np.allclose(u.Quantity(other["theta2_low"]).value, u.Quantity(out["theta2_low"]).value):
            raise DetectionInputError("θ² histograms on different bins")
        for column in ("n_on", "n_off", "n_off_raw"):
            out[column] = out[column] + other[column]
    out["excess"] = out["n_on"] - out["n_off"]
    return out


def detection_row(method, kind, stats, observation_time, gamma_rate_per_min, background_rate_per_min, **extra):
    """The row format: ``method``, ``cuts``, ``n_on``, ``n_off``, ``alpha``, ``excess``,
    ``significance``, ``observation_time_h``, ``gamma_rate_per_min``,
    ``background_rate_per_min`` and any ``extra``."""
    row = {
        "method": method,
        "cuts": kind,
        "n_on": float(stats["n_on"]),
        "n_off": float(stats["n_off"]),
        "alpha": float(stats["alpha"]),
        "excess": float(stats["excess"]),
        "significance": float(stats["significance"]),
        "observation_time_h": float(u.Quantity(observation_time, u.h).to_value(u.h)),
        "gamma_rate_per_min": float(gamma_rate_per_min),
        "background_rate_per_min": float(background_rate_per_min),
    }
    row.update(extra)
    return row


#: target spectra of a simulated observation, by particle
TARGET_SPECTRA = {"gamma": CRAB_MAGIC_JHEAP2015, "proton": IRFDOC_PROTON_SPECTRUM, "electron": IRFDOC_ELECTRON_SPECTRUM}
