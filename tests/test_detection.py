"""Source detection: geometry, counting, Li & Ma, cuts, simulated and observed runs."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, offset_by
from astropy.table import QTable, vstack
from astropy.time import Time
from pyirf.simulations import SimulatedEventsInfo
from pyirf.utils import cone_solid_angle

from ctapipe_gammalearn.evaluation import detection as det
from ctapipe_gammalearn.evaluation.detection import DetectionInputError

ROW_KEYS = {"method", "cuts", "n_on", "n_off", "alpha", "excess", "significance", "observation_time_h",
            "gamma_rate_per_min", "background_rate_per_min"}


# ----------------------------------------------------------------------------- Li & Ma


@pytest.mark.parametrize("n_on, n_off, alpha", [(130, 500, 0.2), (25, 40, 1 / 3), (1000, 9000, 0.1), (7, 3, 1.0)])
def test_li_ma_equals_gammapy_wstat(n_on, n_off, alpha):
    stats = pytest.importorskip("gammapy.stats")
    ref = stats.WStatCountsStatistic(n_on=n_on, n_off=n_off, alpha=alpha)
    out = det.detection_statistics(n_on, n_off, alpha)
    assert out["excess"] == pytest.approx(float(ref.n_sig))
    assert out["significance"] == pytest.approx(float(ref.sqrt_ts), rel=1e-9)


@pytest.mark.parametrize("n_on, n_off, alpha, excess, significance", [
    # reference values of gammapy's own tests of WStatCountsStatistic (Li & Ma eq. 17)
    (5, 1, 1.0, 4.0, 1.7061745691234782),
    (10, 5, 0.3, 8.5, 3.5853812867949024),
    (10, 23, 0.1, 7.7, 3.443415522820395),
])
def test_li_ma_published_values(n_on, n_off, alpha, excess, significance):
    out = det.detection_statistics(n_on, n_off, alpha)
    assert out["excess"] == pytest.approx(excess)
    assert out["significance"] == pytest.approx(significance, rel=1e-9)


def test_li_ma_deficit_and_empty():
    # a deficit is not a detection (pyirf's convention: 0, gammapy's sqrt_ts is negative)
    assert det.detection_statistics(1, 20, 1.0)["significance"] == 0.0
    assert det.detection_statistics(1, 20, 1.0)["excess"] == -19
    assert det.detection_statistics(0, 0, 0.2)["significance"] == 0.0


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("n_off", [1, 3, 5])
@pytest.mark.parametrize("wobble", [0.4, 0.7, 1.5])
@pytest.mark.parametrize("pointing", [(0.0, 70.0), (359.9, 40.0), (123.0, 85.0)])
def test_reflected_regions_geometry(n_off, wobble, pointing):
    p_lon, p_lat = pointing * u.deg
    # source in an arbitrary direction from the pointing
    s_lon, s_lat = det.reflected_positions(p_lon, p_lat, p_lon, p_lat + wobble * u.deg, [0.7] * u.rad)
    s_lon, s_lat = s_lon[0], s_lat[0]
    angles = det.off_rotation_angles(n_off)
    assert det.alpha_of(angles) == pytest.approx(1 / n_off)
    lon, lat = det.reflected_positions(p_lon, p_lat, s_lon, s_lat, angles)
    assert lon.shape == (n_off,)
    # same offset from the pointing as the source
    np.testing.assert_allclose(det.source_offset(p_lon, p_lat, lon, lat).value, wobble, atol=1e-9)
    # none at the source, and on + off evenly spaced on the circle: equal neighbour distances
    ring_lon = np.concatenate([[s_lon.value], lon.value]) * u.deg
    ring_lat = np.concatenate([[s_lat.value], lat.value]) * u.deg
    steps = det.angular_distance(ring_lon, ring_lat, np.roll(ring_lon, -1), np.roll(ring_lat, -1))
    np.testing.assert_allclose(steps.value, steps.value[0], rtol=1e-9)
    assert np.all(det.angular_distance(lon, lat, s_lon, s_lat) > wobble * u.deg * 0.5)
    # the n_off = 1 position is the source mirrored through the pointing
    if n_off == 1:
        assert det.angular_distance(lon, lat, s_lon, s_lat)[0].value == pytest.approx(2 * wobble, rel=1e-6)


def test_reflected_positions_per_event():
    p_lon = np.array([10.0, 200.0]) * u.deg
    p_lat = np.array([60.0, 45.0]) * u.deg
    s_lon, s_lat = p_lon, p_lat + [0.5, 1.0] * u.deg
    lon, lat = det.reflected_positions(p_lon, p_lat, s_lon, s_lat, det.off_rotation_angles(3))
    assert lon.shape == (3, 2)
    np.testing.assert_allclose(det.source_offset(p_lon, p_lat, lon, lat).value, [[0.5, 1.0]] * 3, atol=1e-9)


@pytest.mark.parametrize("wobble, radius, pa", [(0.5, 0.11, 0), (0.7, 0.2, 37), (1.0, 0.3, 200), (0.4, 0.1, 90),
                                                (0.5, 0.11, 271)])
def test_max_regions_do_not_overlap_and_match_gammapy(wobble, radius, pa):
    angles = det.off_rotation_angles("max", offset=wobble * u.deg, on_radius=radius * u.deg)
    p_lon, p_lat = 83.6 * u.deg, 22.0 * u.deg
    s_lon, s_lat = offset_by(p_lon, p_lat, pa * u.deg, wobble * u.deg)
    s_lon, s_lat = u.Quantity(s_lon, u.deg), u.Quantity(s_lat, u.deg)
    lon, lat = det.reflected_positions(p_lon, p_lat, s_lon, s_lat, angles)
    all_lon = np.concatenate([[s_lon.value], lon.value]) * u.deg
    all_lat = np.concatenate([[s_lat.value], lat.value]) * u.deg
    sep = det.angular_distance(all_lon[:, None], all_lat[:, None], all_lon[None], all_lat[None]).value
    assert np.all(sep[~np.eye(len(all_lon), dtype=bool)] >= 2 * radius - 1e-9)
    # as many as fit: one more step would overlap the on region (0.1 rad apart at least)
    size = 2 * np.arcsin(np.sin(np.radians(radius)) / np.sin(np.radians(wobble)))
    assert (len(angles) + 2) * size + 0.2 >= 2 * np.pi
    regions = pytest.importorskip("regions")
    gammapy_makers = pytest.importorskip("gammapy.makers")
    on = regions.CircleSkyRegion(SkyCoord(s_lon, s_lat), radius * u.deg)
    found, _ = gammapy_makers.ReflectedRegionsFinder().run(region=on, center=SkyCoord(p_lon, p_lat))
    assert abs(len(found) - len(angles)) <= 1
    # on gammapy's 0.01° map: the same regions
    pixelized = det.off_rotation_angles("max", offset=wobble * u.deg, on_radius=radius * u.deg,
                                        pixel_size=0.01 * u.deg, source_position_angle=pa * u.deg)
    assert len(found) == len(pixelized)
    lon, lat = det.reflected_positions(p_lon, p_lat, s_lon, s_lat, pixelized)
    centers = SkyCoord([r.center for r in found])
    np.testing.assert_allclose(det.angular_distance(centers.ra, centers.dec, lon, lat).to_value(u.deg), 0, atol=1e-6)


def test_max_regions_errors():
    with pytest.raises(DetectionInputError, match="within the on radius"):
        det.off_rotation_angles("max", offset=0.1 * u.deg, on_radius=0.2 * u.deg)
    with pytest.raises(DetectionInputError, match="1 to 5"):
        det.off_rotation_angles(6)
    with pytest.raises(DetectionInputError, match="1 to 5"):
        det.off_rotation_angles("all")


# ----------------------------------------------------------------------------- counting, θ²


def _hand_table():
    """Pointing (az 180, alt 60), source 0.5° above it, one off position 0.5° below."""
    alt = np.array([60.55, 60.45, 60.5, 60.5 + 0.15, 59.5, 59.52, 61.5])
    az = np.full(len(alt), 180.0)
    return QTable({"reco_alt": alt * u.deg, "reco_az": az * u.deg})


def test_counts_and_theta2_by_hand():
    events = _hand_table()
    src_alt, src_az = 60.5 * u.deg, 180 * u.deg
    angles = det.off_rotation_angles(1)
    off_az, off_alt = det.reflected_positions(180 * u.deg, 60 * u.deg, src_az, src_alt, angles)
    np.testing.assert_allclose([off_az[0].value, off_alt[0].value], [180, 59.5], atol=1e-9)
    theta_on = det.theta_to(events, src_alt, src_az)
    np.testing.assert_allclose(theta_on.value, [0.05, 0.05, 0, 0.15, 1.0, 0.98, 1.0], atol=1e-9)
    theta_off = det.angular_distance(events["reco_az"][None], events["reco_alt"][None], off_az, off_alt)
    n_on, n_off = det.on_off_counts(theta_on, theta_off, 0.1 * u.deg)
    assert (n_on, n_off) == (3, 2)
    weighted = det.on_off_counts(theta_on, theta_off, 0.1 * u.deg, weights=[1, 2, 3, 4, 5, 6, 7])
    assert weighted == (6, 11)
    stats = det.detection_statistics(n_on, n_off, det.alpha_of(angles))
    assert stats["excess"] == 1 and stats["alpha"] == 1
    hist = det.theta2_histograms(theta_on, theta_off, 1.0, bins=[0, 0.01, 0.02, 0.03] * u.deg**2)
    # θ² on: 0.0025 ×2, 0 → first bin; 0.0225 → third; off: 0, 0.0004 → first
    assert list(hist["n_on"]) == [3, 0, 1]
    assert list(hist["n_off"]) == [2, 0, 0]
    assert list(hist["excess"]) == [1, 0, 1]
    half = det.theta2_histograms(theta_on, np.stack([theta_off[0], theta_off[0]]), 0.5,
                                 bins=[0, 0.01] * u.deg**2)
    assert half["n_off_raw"][0] == 4 and half["n_off"][0] == 2


# ----------------------------------------------------------------------------- synthetic MC


def _cap_offsets(rng, n, radius):
    """Position angles and distances [deg] uniform per solid angle within ``radius``."""
    cos_r = np.cos(np.radians(radius))
    r = np.degrees(np.arccos(1 - rng.uniform(0, 1, n) * (1 - cos_r)))
    return rng.uniform(0, 360, n) * u.deg, r * u.deg


def _uniform_cap(rng, n, center_lon, center_lat, radius):
    """Directions uniform per solid angle within ``radius`` of a centre."""
    pa, r = _cap_offsets(rng, n, radius)
    lon, lat = offset_by(center_lon, center_lat, pa, r)
    return u.Quantity(lon, u.deg), u.Quantity(lat, u.deg)


POINTING = (180 * u.deg, 70 * u.deg)  # az, alt
WOBBLE = 0.4 * u.deg
GAMMA_SIM = SimulatedEventsInfo(n_showers=200_000, energy_min=0.01 * u.TeV, energy_max=100 * u.TeV,
                                max_impact=700 * u.m, spectral_index=-2.0, viewcone_min=0 * u.deg,
                                viewcone_max=0 * u.deg)
PROTON_SIM = SimulatedEventsInfo(n_showers=2_000_000, energy_min=0.01 * u.TeV, energy_max=100 * u.TeV,
                                 max_impact=1000 * u.m, spectral_index=-2.0, viewcone_min=0 * u.deg,
                                 viewcone_max=5 * u.deg)


def _synthetic(seed=1, n_gamma=20_000, n_bkg=40_000, observation_time=1 * u.h):
    rng = np.random.default_rng(seed)
    az, alt = POINTING
    gam = QTable()
    gam["event_id"] = np.arange(n_gamma)
    gam["true_energy"] = 10 ** rng.uniform(-1.5, 1.5, n_gamma) * u.TeV
    gam["reco_energy"] = gam["true_energy"] * rng.lognormal(0, 0.2, n_gamma)
    gam["true_alt"] = np.full(n_gamma, (alt + WOBBLE).value) * u.deg
    gam["true_az"] = np.full(n_gamma, az.value) * u.deg
    psf = 0.1 * u.deg * np.sqrt(1 / np.sqrt(gam["true_energy"].to_value(u.TeV)))
    lon, lat = _psf_scatter(rng, gam["true_az"], gam["true_alt"], psf)
    gam["reco_az"], gam["reco_alt"] = lon, lat
    gam["gammaness"] = rng.beta(5, 1.5, n_gamma)
    gam["pointing_alt"] = np.full(n_gamma, alt.value) * u.deg
    gam["pointing_az"] = np.full(n_gamma, az.value) * u.deg
    bkg = QTable()
    bkg["event_id"] = np.arange(n_bkg)
    bkg["true_energy"] = 10 ** rng.uniform(-1.5, 1.5, n_bkg) * u.TeV
    bkg["reco_energy"] = bkg["true_energy"] * rng.lognormal(0, 0.4, n_bkg)
    lon, lat = _uniform_cap(rng, n_bkg, az, alt, 2.5)
    bkg["reco_az"], bkg["reco_alt"] = lon, lat
    bkg["true_az"], bkg["true_alt"] = lon, lat
    bkg["gammaness"] = rng.beta(1.5, 4, n_bkg)
    bkg["pointing_alt"] = np.full(n_bkg, alt.value) * u.deg
    bkg["pointing_az"] = np.full(n_bkg, az.value) * u.deg
    gam = det.weight_events(gam, GAMMA_SIM, det.TARGET_SPECTRA["gamma"], observation_time)
    bkg = det.weight_events(bkg, PROTON_SIM, det.TARGET_SPECTRA["proton"], observation_time)
    return gam, bkg


def _psf_scatter(rng, lon, lat, sigma):
    r = sigma * np.sqrt(-2 * np.log(rng.uniform(0, 1, len(lon))))  # Rayleigh: 2D gaussian
    lon, lat = offset_by(lon, lat, rng.uniform(0, 360, len(lon)) * u.deg, r)
    return u.Quantity(lon, u.deg), u.Quantity(lat, u.deg)


def test_efficiency_cuts_keep_70_percent_and_68_containment():
    gammas, _ = _synthetic(n_bkg=10)
    gammas["theta"] = det.theta_to(gammas, gammas["true_alt"], gammas["true_az"])
    bins = det.reco_energy_bins(0.05 * u.TeV, 20 * u.TeV, 4)
    cuts = det.efficiency_cuts(gammas, bins)
    assert cuts.colnames[:5] == ["low", "high", "center", "gh_cut", "theta_cut"]
    passed, theta_cut = det.apply_cuts(gammas, cuts)
    from pyirf.binning import calculate_bin_indices

    index, valid = calculate_bin_indices(gammas["reco_energy"], bins)
    checked = 0
    for i in range(len(bins) - 1):
        in_bin = valid & (index == i)
        if in_bin.sum() < 500:
            continue
        checked += 1
        assert passed[in_bin].mean() == pytest.approx(0.7, abs=0.01)
        kept = in_bin & passed
        assert (gammas["theta"][kept] < theta_cut[kept]).mean() == pytest.approx(0.68, abs=0.01)
    assert checked >= 8
    # the θ cut follows the PSF: smaller at high energy
    assert cuts["theta_cut"][-2] < cuts["theta_cut"][1]
    fixed = det.efficiency_cuts(gammas, bins, on_radius=0.15 * u.deg)
    assert np.all(fixed["theta_cut"] == 0.15 * u.deg)
    np.testing.assert_array_equal(fixed["gh_cut"], cuts["gh_cut"])
    threshold = det.threshold_cuts(gammas, bins, 0.8)
    assert np.all(threshold["gh_cut"] == 0.8)


def test_flat_background_same_density_in_on_and_off():
    rng = np.random.default_rng(3)
    az, alt = POINTING
    n = 400_000
    lon, lat = _uniform_cap(rng, n, az, alt, 2.5)
    bkg = QTable({"reco_az": lon, "reco_alt": lat, "pointing_az": np.full(n, az.value) * u.deg,
                  "pointing_alt": np.full(n, alt.value) * u.deg, "gammaness": np.ones(n),
                  "reco_energy": np.full(n, 1.0) * u.TeV, "weight": np.full(n, 0.5)})
    bins = [0.1, 10] * u.TeV
    radius = 0.2 * u.deg
    cuts = QTable({"low": bins[:-1], "high": bins[1:], "center": [1.0] * u.TeV, "gh_cut": [0.5],
                   "theta_cut": [radius.value] * u.deg})
    ring = (0 * u.deg, 0.9 * u.deg)
    estimate, raw = det.background_in_on_region(bkg, bins, cuts, cuts, ring)
    expected = 0.5 * n * (cone_solid_angle(radius) / cone_solid_angle(2.5 * u.deg)).to_value(u.one)
    assert estimate[0] == pytest.approx(expected, rel=0.05)
    # direct counts in the on region and the reflected off regions agree with it
    src_az, src_alt = az, alt + 0.5 * u.deg
    angles = det.off_rotation_angles(3)
    off_az, off_alt = det.reflected_positions(az, alt, src_az, src_alt, angles)
    theta_on = det.theta_to(bkg, src_alt, src_az)
    theta_off = det.angular_distance(bkg["reco_az"][None], bkg["reco_alt"][None], off_az[:, None], off_alt[:, None])
    n_on, n_off = det.on_off_counts(theta_on, theta_off, radius, bkg["weight"])
    alpha = det.alpha_of(angles)
    assert n_on == pytest.approx(alpha * n_off, rel=0.1)
    assert alpha * n_off == pytest.approx(estimate[0], rel=0.06)


def test_simulated_observation_rows_and_scaling():
    gammas, bkg = _synthetic()
    rows, details = det.simulated_observation("synthetic", gammas, bkg, name="gammas.h5")
    assert [r["cuts"] for r in rows] == list(det.CUT_KINDS)
    by_kind = {r["cuts"]: r for r in rows}
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert row["alpha"] == pytest.approx(1 / 3)
        assert row["excess"] == pytest.approx(row["n_on"] - row["alpha"] * row["n_off"])
        assert row["significance"] > 3
        assert row["gamma_rate_per_min"] == pytest.approx(row["excess"] / 60)
        assert row["background_rate_per_min"] == pytest.approx(row["alpha"] * row["n_off"] / 60)
        theta2 = details[row["cuts"]]["theta2"]
        assert theta2["n_on"][0] > theta2["n_off"][0]  # the source peak at θ² ~ 0
    # optimised on other events, but not worse than a fixed efficiency by much
    assert by_kind["best"]["significance"] > 0.8 * by_kind["efficiency"]["significance"]
    # four times longer: the weighted counts ×4, the significance ×2
    gammas4, bkg4 = _synthetic(observation_time=4 * u.h)
    rows4, _ = det.simulated_observation("synthetic", gammas4, bkg4, observation_time=4 * u.h)
    for row, row4 in zip(rows, rows4):
        assert row4["n_on"] == pytest.approx(4 * row["n_on"], rel=1e-6)
        assert row4["significance"] == pytest.approx(2 * row["significance"], rel=1e-6)
        assert row4["gamma_rate_per_min"] == pytest.approx(row["gamma_rate_per_min"], rel=1e-6)
    # an energy range on top removes events
    ranged, _ = det.simulated_observation("synthetic", gammas, bkg, energy_min=1 * u.TeV, kinds=("efficiency",))
    assert ranged[0]["n_on"] < by_kind["efficiency"]["n_on"]
    # electrons (IRF-document spectrum) on top of the protons: more background
    electrons = det.weight_events(bkg[:5000], PROTON_SIM, det.TARGET_SPECTRA["electron"])
    electrons["gammaness"] = gammas["gammaness"][:5000]  # gamma-like showers
    with_e, _ = det.simulated_observation("synthetic", gammas, vstack([bkg, electrons]), kinds=("efficiency",))
    assert with_e[0]["background_rate_per_min"] > by_kind["efficiency"]["background_rate_per_min"]
    fixed, _ = det.simulated_observation("synthetic", gammas, bkg, n_off=1, on_radius=0.1 * u.deg,
                                         kinds=("efficiency",))
    assert fixed[0]["alpha"] == 1.0


def test_errors_name_the_file():
    gammas, bkg = _synthetic(n_gamma=2000, n_bkg=2000)
    with pytest.raises(DetectionInputError, match=r"^gammas\.h5: source at 3\.00 deg .* outside the field of view"):
        det.simulated_observation("m", gammas, bkg, wobble_offset=3 * u.deg, name="gammas.h5")
    diffuse = QTable(gammas, copy=True)
    diffuse["true_alt"] = diffuse["true_alt"] + np.linspace(0, 1, len(diffuse)) * u.deg
    with pytest.raises(DetectionInputError, match=r"^gammas\.h5: gammas not point-like"):
        det.simulated_observation("m", diffuse, bkg, name="gammas.h5")
    with pytest.raises(DetectionInputError, match=r"^gammas\.h5: no gamma event in the reconstructed-energy range"):
        det.simulated_observation("m", gammas, bkg, energy_min=500 * u.TeV, name="gammas.h5")
    events, location = _observed_events(n_src=50, n_bkg=50)
    bins = det.reco_energy_bins()
    never = QTable({"low": bins[:-1], "high": bins[1:], "center": np.sqrt(bins[:-1] * bins[1:]),
                    "gh_cut": np.full(len(bins) - 1, 1.5), "theta_cut": np.full(len(bins) - 1, 0.1) * u.deg})
    with pytest.raises(DetectionInputError, match=r"^run_1\.h5: no events left after the cuts of m$"):
        det.observed_run("m", events, CRAB.ra, CRAB.dec, location, never, name="run_1.h5")
    with pytest.raises(DetectionInputError, match=r"^gammas\.h5: source 0\.050 deg from the pointing, within"):
        det.simulated_observation("m", gammas, bkg, wobble_offset=0.05 * u.deg, name="gammas.h5")
    with pytest.raises(DetectionInputError, match=r"^run_1\.h5: source at .* outside the field of view"):
        det.observed_run("m", events, CRAB.ra + 20 * u.deg, CRAB.dec, location, on_radius=0.1 * u.deg,
                         name="run_1.h5")


# ----------------------------------------------------------------------------- observed runs

CRAB = SkyCoord(83.633 * u.deg, 22.0145 * u.deg)


def _observed_events(n_src=3000, n_bkg=20_000, seed=5, start="2021-01-10T23:00:00"):
    """An observed wobble run: the pointing 0.4° from the Crab, events around the source
    and uniform over the field of view, in alt/az at their times (La Palma)."""
    rng = np.random.default_rng(seed)
    location = EarthLocation.from_geodetic(-17.89 * u.deg, 28.76 * u.deg, 2200 * u.m)
    n = n_src + n_bkg
    times = Time(start) + np.sort(rng.uniform(0, 20, n)) * u.min
    frame = AltAz(obstime=times, location=location)
    pnt_ra, pnt_dec = offset_by(CRAB.ra, CRAB.dec, 90 * u.deg, 0.4 * u.deg)
    pointing = SkyCoord(pnt_ra, pnt_dec).transform_to(frame)
    source = CRAB.transform_to(frame)
    events = QTable()
    events["time"] = times
    events["pointing_alt"], events["pointing_az"] = pointing.alt.to(u.deg), pointing.az.to(u.deg)
    src_lon, src_lat = _psf_scatter(rng, source.az[:n_src], source.alt[:n_src], 0.08 * u.deg)
    pa, r = _cap_offsets(rng, n_bkg, 2.0)
    b_lon, b_lat = offset_by(pointing.az[n_src:], pointing.alt[n_src:], pa, r)
    events["reco_az"] = np.concatenate([src_lon.value, u.Quantity(b_lon, u.deg).value]) * u.deg
    events["reco_alt"] = np.concatenate([src_lat.value, u.Quantity(b_lat, u.deg).value]) * u.deg
    events["reco_energy"] = 10 ** rng.uniform(-1, 1, n) * u.TeV
    events["gammaness"] = np.concatenate([rng.beta(5, 1.5, n_src), rng.beta(1.5, 4, n_bkg)])
    order = np.argsort(times.mjd)
    return events[order], location


def test_source_altaz_interpolation_matches_exact():
    location = EarthLocation.from_geodetic(-17.89 * u.deg, 28.76 * u.deg, 2200 * u.m)
    times = Time("2021-01-10T23:00:00") + np.sort(np.random.default_rng(2).uniform(0, 30, 5000)) * u.min
    alt, az = det.source_altaz(CRAB.ra, CRAB.dec, times, location)
    exact_alt, exact_az = det.source_altaz(CRAB.ra, CRAB.dec, times[::50], location, max_step=None)
    sep = det.angular_distance(az[::50], alt[::50], exact_az, exact_alt)
    assert sep.max() < 1e-4 * u.deg
    assert np.ptp(alt.value) > 1  # the source moves during the run


def test_observed_run_counts_and_stacking():
    events, location = _observed_events()
    row, theta2 = det.observed_run("m", events, CRAB.ra, CRAB.dec, location, on_radius=0.2 * u.deg, run_id=1,
                                   livetime=20 * u.min, name="run_1.h5")
    assert ROW_KEYS <= set(row)
    assert row["run_ids"] == [1] and row["livetime_h"] == pytest.approx(1 / 3)
    # ~91 % of 3000 source events inside 0.2° (2D gaussian of 0.08°), background ≈ α N_off
    expected_bkg = 20_000 * (cone_solid_angle(0.2 * u.deg) / cone_solid_angle(2 * u.deg)).to_value(u.one)
    expected_excess = 3000 * (1 - np.exp(-0.5 * (0.2 / 0.08) ** 2))
    assert row["excess"] == pytest.approx(expected_excess, abs=5 * np.sqrt(expected_bkg) + 60)
    assert row["alpha"] * row["n_off"] == pytest.approx(expected_bkg, rel=0.25)
    assert row["significance"] > 30
    assert theta2["n_on"][0] > 5 * theta2["n_off"][0]
    # two halves of the run stacked = the whole run
    half = len(events) // 2
    rows = [det.observed_run("m", part, CRAB.ra, CRAB.dec, location, on_radius=0.2 * u.deg, run_id=i,
                             livetime=10 * u.min)[0] for i, part in enumerate([events[:half], events[half:]])]
    stacked = det.stack_runs(rows)
    assert stacked["n_on"] == row["n_on"] and stacked["n_off"] == row["n_off"]
    assert stacked["significance"] == pytest.approx(row["significance"])
    assert stacked["run_ids"] == [0, 1] and stacked["livetime_h"] == pytest.approx(1 / 3)
    halves_theta2 = [det.observed_run("m", part, CRAB.ra, CRAB.dec, location, on_radius=0.2 * u.deg)[1]
                     for part in (events[:half], events[half:])]
    summed = det.stack_theta2(halves_theta2)
    # (the source track is interpolated on each part's own time grid: 1e-6° moves an
    # event at a bin edge now and then)
    for column in ("n_on", "n_off_raw"):
        assert np.sum(summed[column]) == pytest.approx(np.sum(theta2[column]), abs=1)
        assert np.max(np.abs(summed[column] - theta2[column])) <= 1
    np.testing.assert_allclose(summed["n_off"], summed["n_off_raw"] * row["alpha"])
    # cuts from simulations: a gammaness cut removes mostly background
    bins = det.reco_energy_bins()
    cuts = QTable({"low": bins[:-1], "high": bins[1:], "center": np.sqrt(bins[:-1] * bins[1:]),
                   "gh_cut": np.full(len(bins) - 1, 0.6), "theta_cut": np.full(len(bins) - 1, 0.2) * u.deg})
    cut_row, _ = det.observed_run("m", events, CRAB.ra, CRAB.dec, location, cuts, livetime=20 * u.min)
    # a fixed on radius replaces the cuts' θ cut
    narrow, _ = det.observed_run("m", events, CRAB.ra, CRAB.dec, location, cuts, on_radius=0.1 * u.deg)
    assert narrow["n_off"] < 0.5 * cut_row["n_off"]
    assert cut_row["n_off"] < 0.3 * row["n_off"]
    assert cut_row["n_on"] > 0.7 * (row["n_on"] - row["alpha"] * row["n_off"])
    maxed, _ = det.observed_run("m", events, CRAB.ra, CRAB.dec, location, on_radius=0.1 * u.deg, n_off="max")
    assert maxed["n_off_regions"] > 5
    with pytest.raises(DetectionInputError, match="different α"):
        det.stack_runs([row, maxed])
