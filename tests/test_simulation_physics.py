"""Physics sanity of the air-shower simulator, at the level of the model (no files)."""

import astropy.units as u
import numpy as np
import pytest
from ctapipe.coordinates import TelescopeFrame
from ctapipe.reco.preprocessing import horizontal_to_telescope

from ctapipe_gammalearn.simulation import AirShowerSimEventSource
from ctapipe_gammalearn.simulation.atmosphere import ExponentialAtmosphere
from ctapipe_gammalearn.simulation.cascade import axis_direction, perpendicular_basis
from ctapipe_gammalearn.simulation.cherenkov import ground_to_fov
from ctapipe_gammalearn.simulation.detector import CameraImage
from ctapipe_gammalearn.simulation.em_cascade import (
    CURVATURE_PER_TESLA_TEV,
    LA_PALMA_FIELD,
    ElectromagneticModel,
    _deflect,
    em_cascade,
    free_paths,
)
from ctapipe_gammalearn.simulation.emission import EmissionPoints
from ctapipe_gammalearn.simulation.longitudinal import CRITICAL_ENERGY, sample_greisen_depth
from ctapipe_gammalearn.simulation.muons import muon_ring_photons
from ctapipe_gammalearn.simulation.optics import coma_coefficient
from ctapipe_gammalearn.simulation.sampling import fov_to_altaz, sample_power_law
from ctapipe_gammalearn.simulation.shower_model import AirShowerModel, ShowerLight


@pytest.fixture(scope="module")
def source():
    # no minimum light: fixed-geometry studies want every image
    return AirShowerSimEventSource(n_events=1, seed=0, zenith=20.0, min_expected_pe=0.0)


@pytest.fixture(scope="module")
def pixels(source):
    geom = source.subarray.tel[1].camera.geometry.transform_to(TelescopeFrame())
    return geom.pix_x.to_value(u.deg), geom.pix_y.to_value(u.deg)


def _on_axis_images(source, particle, energy, impact, n, seed):
    """True images of ``n`` showers from the pointing direction with the core ``impact`` m from LST-1."""
    source.particle = particle
    rng = np.random.default_rng(seed)
    alt, az = source._pointing
    tel = source.subarray.positions[1].to_value(u.m)
    # core displaced perpendicular to the axis plane's azimuth (az = 0 -> along y)
    images = []
    for _ in range(n):
        _, ims = source.simulate_shower(rng, energy, alt, az, tel[0], tel[1] + impact, [1])
        images.append(ims.get(1))
    return images


def _true_intensity(images):
    return np.array([0.0 if im is None else im.true_image.sum() for im in images])


def test_ground_to_fov_matches_ctapipe():
    rng = np.random.default_rng(1)
    alt_p, az_p = np.deg2rad(70.0), np.deg2rad(30.0)
    alt, az = alt_p + np.deg2rad(rng.uniform(-2, 2, 20)), az_p + np.deg2rad(rng.uniform(-3, 3, 20))
    up = -axis_direction(alt, az)
    lon, lat = ground_to_fov(up, alt_p, az_p)
    ref_lon, ref_lat = horizontal_to_telescope(alt * u.rad, az * u.rad, alt_p * u.rad, az_p * u.rad)
    np.testing.assert_allclose(lon, ref_lon.to_value(u.deg), atol=1e-6)
    np.testing.assert_allclose(lat, ref_lat.to_value(u.deg), atol=1e-6)
    back_alt, back_az = fov_to_altaz(lon, lat, alt_p, az_p)
    np.testing.assert_allclose(back_alt, alt, atol=1e-9)
    np.testing.assert_allclose(np.mod(back_az - az + np.pi, 2 * np.pi) - np.pi, 0, atol=1e-9)


def test_power_law_index():
    energy = sample_power_law(np.random.default_rng(2), 0.1, 100.0, -2.0, 200_000)
    assert energy.min() >= 0.1 and energy.max() <= 100.0
    # for E^-2, the counts per decade fall by a factor 10
    counts, _ = np.histogram(np.log10(energy), bins=[-1, 0, 1, 2])
    assert counts[0] / counts[1] == pytest.approx(10, rel=0.05)


def test_shower_maximum_grows_with_log_energy():
    rng = np.random.default_rng(3)
    beta_low, beta_high = np.log(0.1 / CRITICAL_ENERGY), np.log(10.0 / CRITICAL_ENERGY)
    t_low = sample_greisen_depth(np.full(50_000, beta_low), rng)
    t_high = sample_greisen_depth(np.full(50_000, beta_high), rng)
    # Greisen: the maximum sits at t = ln(E/Ec), so it moves by ln(100) radiation lengths
    assert np.median(t_high) - np.median(t_low) == pytest.approx(np.log(100.0), rel=0.2)


def test_profile_shift_moves_the_shower_maximum_up():
    beta = np.full(50_000, np.log(1.0 / CRITICAL_ENERGY))
    plain = sample_greisen_depth(beta, np.random.default_rng(4))
    skipped = sample_greisen_depth(beta, np.random.default_rng(4), skip=2.0)
    # the first two radiation lengths hold little of a 1 TeV profile: leaving them out and
    # counting from there moves the median up by about two radiation lengths
    assert skipped.min() >= 2.0
    assert np.median(plain) - np.median(skipped - 2.0) == pytest.approx(2.0, abs=0.1)
    model, shifted = AirShowerModel(), AirShowerModel(profile_shift=2.0)
    alt, az = np.deg2rad(80.0), 0.0
    x_max = [
        np.median(
            [m.shower(np.random.default_rng(i), "gamma", 1.0, alt, az, 0.0, 0.0, 2200.0).x_max for i in range(20)]
        )
        for m in (model, shifted)
    ]
    assert x_max[0] - x_max[1] == pytest.approx(2.0 * 36.7, abs=25.0)


def test_atmosphere_profile():
    atm = ExponentialAtmosphere()
    assert atm.vertical_depth(0.0) == pytest.approx(1030, rel=0.01)
    assert atm.height(atm.vertical_depth(12345.0)) == pytest.approx(12345.0)
    # the Cherenkov angle shrinks with height, the Moliere radius grows
    assert atm.cherenkov_angle(10e3) < atm.cherenkov_angle(2e3)
    assert atm.moliere_radius(10e3) > atm.moliere_radius(2e3)


def test_intensity_linear_in_energy(source):
    energies = np.array([0.3, 1.0, 3.0])
    mean = [_true_intensity(_on_axis_images(source, "gamma", e, 80.0, 8, seed=10)).mean() for e in energies]
    slope = np.polyfit(np.log(energies), np.log(mean), 1)[0]
    # about linear; deeper penetration of bigger showers adds a little at fixed impact
    assert 0.85 < slope < 1.3


def test_light_falls_beyond_the_cherenkov_pool(source):
    near = _true_intensity(_on_axis_images(source, "gamma", 1.0, 60.0, 6, seed=11)).mean()
    far = _true_intensity(_on_axis_images(source, "gamma", 1.0, 300.0, 6, seed=11)).mean()
    assert far < 0.2 * near


def test_proton_gives_less_light_than_gamma(source):
    gamma = _true_intensity(_on_axis_images(source, "gamma", 1.0, 100.0, 12, seed=12)).mean()
    proton = _true_intensity(_on_axis_images(source, "proton", 1.0, 100.0, 12, seed=12)).mean()
    assert 0.1 < proton / gamma < 0.7


def _centroid_and_slope(image: CameraImage, pixels):
    """Distance of the image centroid from the source (camera centre) and the time slope
    along the source -> centroid direction, ns/deg."""
    x, y = pixels
    w = image.true_image.astype(float)
    cx, cy = np.average(x, weights=w), np.average(y, weights=w)
    distance = np.hypot(cx, cy)
    longitudinal = (x * cx + y * cy) / distance
    hit = w > 0
    slope = np.polyfit(longitudinal[hit], image.peak_time[hit], 1, w=np.sqrt(w[hit]))[0]
    return distance, slope


def test_image_geometry_follows_impact(source, pixels):
    results = {}
    for impact in (60.0, 150.0, 250.0):
        images = _on_axis_images(source, "gamma", 1.0, impact, 10, seed=13)
        values = np.array(
            [_centroid_and_slope(im, pixels) for im in images if im is not None and im.true_image.sum() > 50]
        )
        results[impact] = np.median(values, axis=0)
    distance = [results[i][0] for i in (60.0, 150.0, 250.0)]
    slope = [results[i][1] for i in (60.0, 150.0, 250.0)]
    # the centroid moves away from the source as the impact grows
    assert distance[0] < distance[1] < distance[2]
    # far telescopes see the upper shower (near the source) first: time grows away from
    # the source, and the faster the larger the impact
    assert abs(slope[0]) < 1.0 < slope[1] < slope[2]


def _miss(events):
    """Perpendicular distance of the true source from the image major axis, deg."""
    out = []
    for event in events:
        h = event.dl1.tel[1].parameters.hillas
        if not np.isfinite(h.intensity) or h.intensity < 100:
            continue
        lon, lat = horizontal_to_telescope(
            event.simulation.shower.alt,
            event.simulation.shower.az,
            event.monitoring.pointing.array_altitude,
            event.monitoring.pointing.array_azimuth,
        )
        dx = lon.to_value(u.deg) - h.fov_lon.to_value(u.deg)
        dy = lat.to_value(u.deg) - h.fov_lat.to_value(u.deg)
        psi = h.psi.to_value(u.rad)
        out.append(abs(-dx * np.sin(psi) + dy * np.cos(psi)))
    return np.array(out)


@pytest.mark.slow
def test_gammas_point_to_the_source_protons_do_not():
    from ctapipe.image import ImageProcessor

    misses = {}
    for particle, e_min in (("gamma", 0.1), ("proton", 0.3)):
        src = AirShowerSimEventSource(
            particle=particle,
            n_events=40,
            seed=21,
            viewcone_max=1.5,
            energy_min=e_min,
            energy_max=10.0,
            core_max=250.0,
        )
        process = ImageProcessor(subarray=src.subarray)
        events = []
        for event in src:
            process(event)
            events.append(event)
        misses[particle] = _miss(events)
    assert len(misses["gamma"]) >= 10 and len(misses["proton"]) >= 10
    assert np.median(misses["gamma"]) < 0.12
    assert np.median(misses["proton"]) > 1.5 * np.median(misses["gamma"])


def test_muon_ring_radius_and_intensity():
    rng = np.random.default_rng(4)
    lon, lat = muon_ring_photons(rng, 11.0, 1.2, 25.0, np.array([0.3, -0.2]), impact=0.0)
    radius = np.hypot(lon - 0.3, lat + 0.2)
    assert np.median(radius) == pytest.approx(1.2, abs=0.02)
    assert len(lon) == pytest.approx(25.0 * 2 * np.pi * 11.0, rel=0.1)
    # a muon passing outside the mirror lights only an arc
    lon_out, _ = muon_ring_photons(rng, 11.0, 1.2, 25.0, np.array([0.0, 0.0]), impact=15.0)
    assert 0 < len(lon_out) < 0.6 * len(lon)


def test_muons_come_from_the_shower_direction(source):
    """A muon flies from its birth point on the shower axis: its ring is centred near the
    shower's direction (so showers far off axis leave no ring in the camera), displaced
    outwards the farther the telescope is from the core."""
    model = source.shower_model
    alt_p, az_p = source._pointing
    rng = np.random.default_rng(8)

    def centres(offset_deg, core_distance, n=200):
        alt = alt_p + np.deg2rad(offset_deg)
        light = ShowerLight(
            points=None,
            axis=axis_direction(alt, az_p),
            core=np.array([0.0, core_distance, 0.0]),
            x_max=np.nan,
            h_first_int=np.nan,
            obs_level=source.observation_level,
        )
        return np.array([model.muon_direction(rng, light, np.zeros(3), (alt_p, az_p)) for _ in range(n)])

    on_axis = centres(0.0, 0.0)
    assert np.abs(np.median(on_axis, axis=0)).max() < 0.15
    assert np.std(on_axis[:, 0]) == pytest.approx(model.muon_angular_spread, rel=0.2)
    # a shower 5 deg above the pointing: the muon comes from 5 deg above too
    off_axis = centres(5.0, 0.0)
    assert np.median(off_axis[:, 1]) == pytest.approx(5.0, abs=0.3)
    # 400 m from the core the muon arrives about 400 m / ((12 - 2.2) km / cos 20 deg) = 2.2 deg off the axis
    far = np.hypot(*np.median(centres(0.0, 400.0), axis=0))
    assert 1.2 < far < 2.6


def test_trigger_needs_a_compact_bright_group(source):
    detector = source.detector
    n_pix = source.subarray.tel[1].camera.geometry.n_pixels
    rng = np.random.default_rng(5)
    # night-sky background alone does not trigger
    empty = detector.respond(1, np.zeros(0), np.zeros(0), np.zeros(0), rng)
    assert not detector.triggered(1, empty)
    # 300 p.e. in a 0.1 deg spot does
    spot = detector.respond(1, rng.normal(0.5, 0.05, 300), rng.normal(0.2, 0.05, 300), np.full(300, 18.0), rng)
    assert spot.true_image.sum() == 300
    assert detector.triggered(1, spot)
    assert n_pix == len(spot.image)


def test_peak_time_noise_blurs_faint_pixels_most():
    from ctapipe_gammalearn.simulation.detector import DetectorResponse

    subarray = AirShowerSimEventSource(n_events=1).subarray
    geom = subarray.tel[1].camera.geometry.transform_to(TelescopeFrame())
    x, y = geom.pix_x.to_value(u.deg), geom.pix_y.to_value(u.deg)
    rng = np.random.default_rng(6)
    # every pixel gets a fixed number of p.e. at its centre, all arriving at 18 ns; electronic
    # noise only, so that no pixel's peak is a night-sky pulse's
    spread = {}
    for noise in (0.0, 4.0):
        detector = DetectorResponse(
            subarray, psf_sigma=0.0, peak_time_noise=noise, nsb_pe=0.01, electronic_noise_pe=1.5
        )
        for n in (5, 50):
            image = detector.respond(1, np.repeat(x, n), np.repeat(y, n), np.full(n * len(x), 18.0), rng)
            q16, q84 = np.percentile(image.peak_time[image.true_image == n], [16, 84])
            spread[noise, n] = (q84 - q16) / 2
    noise_rms = np.sqrt(0.01 + 1.5**2)
    for n in (5, 50):
        expected = np.hypot(1.2 / np.sqrt(n), 4.0 * noise_rms / n)
        assert spread[4.0, n] == pytest.approx(expected, rel=0.15)
        assert spread[0.0, n] == pytest.approx(1.2 / np.sqrt(n), rel=0.15)
    assert spread[4.0, 5] / spread[0.0, 5] > 1.8 > spread[4.0, 50] / spread[0.0, 50]


def test_same_seed_same_events():
    def run(seed):
        src = AirShowerSimEventSource(n_events=3, seed=seed, viewcone_max=1.0, energy_min=0.1, core_max=200.0)
        return [(e.simulation.shower.energy.to_value(u.TeV), e.dl1.tel[1].image.copy()) for e in src]

    a, b, c = run(7), run(7), run(8)
    for (ea, ia), (eb, ib) in zip(a, b):
        assert ea == eb
        np.testing.assert_array_equal(ia, ib)
    assert a[0][0] != c[0][0]


def test_em_cascade_splits_energy_into_sub_showers():
    atmosphere = ExponentialAtmosphere()
    axis = axis_direction(np.deg2rad(80.0), 0.0)
    model = ElectromagneticModel(leaf_fraction=1 / 8, leaf_min_energy=3e-3)
    rng = np.random.default_rng(3)
    for energy in (0.1, 1.0):
        subs, first_height = em_cascade(energy, np.zeros(2), axis, rng, atmosphere, 2200.0, "gamma", model)
        # a few generations high in the atmosphere: nothing reaches the ground, energy is conserved
        assert len(subs) > 4
        assert subs.energy.sum() == pytest.approx(energy)
        assert np.all(subs.energy <= energy / 8 + 1e-12)
        assert first_height > subs.start[:, 2].min() > 0
        # sub-showers start where they were made: Greisen's profile holds the conversion path
        assert np.all(subs.start_depth == 0.0)
    # a smooth single shower when splitting is switched off
    subs, _ = em_cascade(
        1.0, np.zeros(2), axis, rng, atmosphere, 2200.0, "gamma", ElectromagneticModel(leaf_fraction=1.0)
    )
    assert len(subs) == 1


def test_split_bremsstrahlung_conserves_energy_and_raises_the_shower_maximum():
    atmosphere = ExponentialAtmosphere()
    axis = axis_direction(np.deg2rad(70.0), 0.0)
    split = ElectromagneticModel(split_bremsstrahlung=True)
    rng = np.random.default_rng(4)
    one, two, kept = [], [], []
    for _ in range(40):
        plain, _ = em_cascade(1.0, np.zeros(2), axis, rng, atmosphere, 2200.0, "gamma", ElectromagneticModel())
        subs, _ = em_cascade(1.0, np.zeros(2), axis, rng, atmosphere, 2200.0, "gamma", split)
        # energy is conserved but for a rare leading particle that reaches the ground
        kept.append(subs.energy.sum())
        assert np.all(subs.energy <= 1.0 / 8 + 1e-12)
        one.append(np.average(plain.start[:, 2], weights=plain.energy))
        two.append(np.average(subs.start[:, 2], weights=subs.energy))
    assert max(kept) == pytest.approx(1.0) and np.mean(np.isclose(kept, 1.0)) >= 0.9
    # softer photons reach the leaf energy sooner: the sub-showers start higher
    assert np.median(two) > np.median(one) + 300.0


def test_free_paths_photons_exponential_electrons_bethe_heitler_step():
    rng = np.random.default_rng(5)
    photon = np.arange(40000) % 2 == 0
    path = free_paths(photon, rng)
    # photons: exponential, mean = std = 9/7 X0
    assert path[photon].mean() == pytest.approx(9 / 7 * 36.7, rel=0.03)
    assert path[photon].std() == pytest.approx(9 / 7 * 36.7, rel=0.05)
    # electrons: a fixed X0 ln 2, the thickness over which Bethe-Heitler's kept share is uniform
    np.testing.assert_allclose(path[~photon], 36.7 * np.log(2.0))


def test_geomagnetic_field_bends_electrons_and_positrons_apart():
    n, energy, length = 20000, 0.01, 1000.0  # TeV, m
    d = np.tile(axis_direction(np.deg2rad(80.0), 0.0), (n, 1))
    field = np.array(LA_PALMA_FIELD) * 1e-6
    rng = np.random.default_rng(4)
    step = np.full(n, length)
    path = np.full(n, 36.7)
    bent = {}
    for charge in (-1.0, 1.0):
        new, _ = _deflect(d, np.zeros((n, 3)), step, path, np.full(n, energy), np.full(n, charge), field, rng)
        bent[charge] = (new - d).mean(axis=0)
    expected = CURVATURE_PER_TESLA_TEV / energy * length * np.cross(d[0], field)
    # scattering averages out; the bending is q (d x B) L / p, opposite for the two charges
    np.testing.assert_allclose(bent[1.0], expected, atol=0.05 * np.linalg.norm(expected))
    np.testing.assert_allclose(bent[-1.0], -expected, atol=0.05 * np.linalg.norm(expected))


def test_dish_blurs_light_from_outside_its_focus():
    """A point 10 km away: sharp for a dish focused at 10 km; a disk of angular radius
    R / 10 km (std R / 20 km per axis) for one focused at infinity."""
    model = AirShowerModel(lateral_scale=0.0)
    pointing = (np.deg2rad(70.0), np.deg2rad(20.0))
    up = -axis_direction(*pointing)
    position = (10000.0 * up)[None, :]
    e1, e2 = perpendicular_basis(-up[None, :])
    points = EmissionPoints(position, position, -up[None, :], np.array([12000.0]), np.ones(1), np.ones(1), e1, e2)
    light = ShowerLight(points, -up, np.zeros(3), 300.0, 20000.0, 2200.0)
    radius = 11.5
    spread = {}
    for focus in (10000.0, 0.0):
        lon, lat, _ = model.photoelectrons(
            np.random.default_rng(6), light, np.ones(1), 20000, np.zeros(3), pointing, radius, focus
        )
        spread[focus] = np.hypot(np.std(lon), np.std(lat)) / np.sqrt(2)
    assert spread[10000.0] < 1e-4
    assert spread[0.0] == pytest.approx(np.rad2deg(radius / 20000.0), rel=0.05)


def test_dish_coma_follows_the_effective_focal_length(source):
    """A star 1 deg off axis, seen by LST-1's dish with its coma: the image centroid lands at
    1 deg in the camera frame (whose focal length is the effective one), and the comet is
    radially sqrt(3) times wider than across, of the size the optics fix. On axis it is sharp."""
    radius = np.sqrt(source.subarray.tel[1].optics.mirror_area.to_value(u.m**2) / np.pi)
    coma, scale = source.detector.coma_optics(1, radius)
    optics = source.subarray.tel[1].optics
    assert coma * radius**2 == pytest.approx(
        (optics.effective_focal_length / optics.equivalent_focal_length).to_value(u.one) - 1.0
    )
    model = AirShowerModel(lateral_scale=0.0)
    pointing = (np.deg2rad(70.0), np.deg2rad(20.0))
    spots = {}
    for offset in (0.0, 1.0):
        alt, az = fov_to_altaz(np.array([offset]), np.array([0.0]), *pointing)
        up = -axis_direction(alt, az)
        position = 10000.0 * up
        e1, e2 = perpendicular_basis(-up)
        points = EmissionPoints(position, position, -up, np.array([12000.0]), np.ones(1), np.ones(1), e1, e2)
        light = ShowerLight(points, -up[0], np.zeros(3), 300.0, 20000.0, 2200.0)
        spots[offset] = model.photoelectrons(
            np.random.default_rng(7), light, np.ones(1), 40000, np.zeros(3), pointing, radius, 10000.0, coma, scale
        )[:2]
    lon, lat = spots[0.0]
    assert np.hypot(np.std(lon), np.std(lat)) < 1e-4
    lon, lat = spots[1.0]
    assert np.mean(lon) == pytest.approx(1.0, abs=2e-3)
    # third-order coma over a uniform disk: std 0.707 and 0.408 of K R^2 / f^2 times the angle
    size = coma * radius**2 * 1.0 * scale
    assert np.std(lon) == pytest.approx(np.sqrt(0.5) * size, rel=0.05)
    assert np.std(lat) == pytest.approx(np.sqrt(1 / 6) * size, rel=0.05)
    # no coma where the optics hold no effective focal length beyond the equivalent one
    assert coma_coefficient(28.0, 28.0, radius) == 0.0
    assert coma_coefficient(28.0, np.nan, radius) == 0.0


def test_exponential_angular_tail_is_normalised_and_follows_hillas():
    from scipy.integrate import quad

    from ctapipe_gammalearn.simulation.cherenkov import _exponential_density, _rice_density, hillas_theta_0

    for theta_c, theta_0 in [(0.021, 0.10), (0.012, 0.07), (0.02, 0.03)]:
        total = quad(lambda a: 2 * np.pi * np.sin(a) * _exponential_density(a, theta_c, theta_0), 0, np.pi, limit=200)
        assert total[0] == pytest.approx(1.0, abs=0.01)
    atmosphere = ExponentialAtmosphere()
    # Hillas: theta_0 = 0.83 (E_thr / MeV)^-0.67 rad, ~0.1 rad at 2.2 km, narrower up where E_thr is higher
    low, high = hillas_theta_0(atmosphere.cherenkov_threshold(np.array([2200.0, 10000.0])))
    assert 0.08 < low < 0.11 and 0.06 < high < 0.08
    # relative to the Cherenkov ring, the exponential tail puts far more light 3.5 deg from the
    # axis (where the far telescopes' images come from) than the two-Gaussian default
    theta_c, core, tail = 0.017, np.deg2rad(0.45), np.deg2rad(3.0)

    def mixture(alpha, exponential, fraction):
        far = _exponential_density(alpha, theta_c, high) if exponential else _rice_density(alpha, theta_c, tail)
        return (1 - fraction) * _rice_density(alpha, theta_c, core) + fraction * far

    def far_to_ring(exponential, fraction):
        return mixture(np.deg2rad(3.5), exponential, fraction) / mixture(theta_c, exponential, fraction)

    assert far_to_ring(True, 0.9) > 3 * far_to_ring(False, 0.35)


def test_nkg_lateral_spread_has_the_nkg_median_and_widens_with_age():
    from ctapipe_gammalearn.simulation.emission import lateral_offsets

    atmosphere = ExponentialAtmosphere()
    n = 40000
    direction = np.tile([0.0, 0.0, -1.0], (n, 1))
    e1, e2 = perpendicular_basis(direction)

    def radii(age):
        points = EmissionPoints(
            np.zeros((n, 3)), np.zeros((n, 3)), direction, np.full(n, 10000.0), np.full(n, age), np.ones(n), e1, e2
        )
        offsets = lateral_offsets(points, np.arange(n), np.random.default_rng(1), atmosphere, 0.1, "nkg")
        assert np.allclose(offsets[:, 2], 0.0)  # perpendicular to the vertical axis
        return np.linalg.norm(offsets, axis=1) / (0.1 * atmosphere.moliere_radius(10000.0))

    young, mature, old = radii(0.6), radii(1.0), radii(1.4)
    # NKG at s = 1: x (1+x)^-3.5 dx / x  ->  P(> x) = (1+x)^-2.5, median 2^0.4 - 1
    assert np.median(mature) == pytest.approx(2**0.4 - 1, rel=0.03)
    assert np.median(young) < np.median(mature) < np.median(old)
    assert old.max() <= 5.0 + 1e-9
