"""Observing conditions of the simulator: each one changes what it should, and nothing else."""

import astropy.units as u
import numpy as np
import pytest
from ctapipe.core import ToolConfigurationError, run_tool
from ctapipe.io import TableLoader, read_table
from traitlets.config import Config

from ctapipe_gammalearn.simulation import AirShowerSimEventSource
from ctapipe_gammalearn.simulation.conditions import CONDITIONS_TABLE
from ctapipe_gammalearn.simulation.detector import DetectorResponse
from ctapipe_gammalearn.simulation.subarray import lst1_subarray
from ctapipe_gammalearn.tools.simulate import SimulateTool

NOMINAL_NSB = 1.8  # DetectorResponse.nsb_pe
ELECTRONIC = 0.3  # DetectorResponse.electronic_noise_pe


@pytest.fixture(scope="module")
def subarray():
    return lst1_subarray()


def detector(subarray, **conditions):
    return DetectorResponse(subarray, config=Config({"ObservingConditions": conditions}))


def pedestals(det, n_frames=20, seed=1):
    """Images without any p.e.: the background alone, (n_frames, n_pixels)."""
    rng = np.random.default_rng(seed)
    empty = np.zeros(0)
    return np.array([det.respond(1, empty, empty, empty, rng).image for _ in range(n_frames)])


def spot(rng, n):
    """``n`` p.e. spread over the inner camera (deg, ns)."""
    return rng.normal(0.0, 0.6, n), rng.normal(0.0, 0.6, n), np.full(n, 18.0)


def test_nsb_scale_raises_the_pedestal_variance(subarray):
    variance = {scale: pedestals(detector(subarray, nsb_scale=scale)).var() for scale in (1.0, 3.0)}
    # Poisson background (mean subtracted) plus electronic noise
    for scale, measured in variance.items():
        assert measured == pytest.approx(scale * NOMINAL_NSB + ELECTRONIC**2, rel=0.03)
    assert variance[3.0] / variance[1.0] > 2.7
    # the mean stays at the calibrated pedestal, 0
    assert abs(pedestals(detector(subarray, nsb_scale=3.0)).mean()) < 0.02


def test_nsb_gradient_runs_across_the_camera(subarray):
    det = detector(subarray, nsb_scale=2.0, nsb_gradient=0.5, nsb_gradient_angle=90.0)
    lookup = det.lookup(1)
    variance = pedestals(det, n_frames=40).var(axis=0)
    top, bottom = lookup.pix_y > 0.8, lookup.pix_y < -0.8
    # the rate rises along +fov_lat: about 2 x (1 +- 0.5 x 0.6) x 1.8 p.e. at the two ends
    assert variance[top].mean() > 1.5 * variance[bottom].mean()
    rate = det.camera_conditions(1).nsb_rate
    np.testing.assert_allclose(rate[np.abs(lookup.pix_y) < 0.01], 2.0 * NOMINAL_NSB)


def test_stars_are_bright_spots_in_a_few_pixels(subarray):
    det = detector(subarray, n_stars=3, star_nsb_pe=30.0)
    rate = det.camera_conditions(1).nsb_rate
    extra = rate - NOMINAL_NSB
    centres = np.flatnonzero(extra >= 30.0)
    assert 1 <= len(centres) <= 3  # two stars may share a pixel
    assert 3 <= np.count_nonzero(extra > 0) <= 3 * 7  # each star: its pixel and its neighbours
    variance = pedestals(det, n_frames=40).var(axis=0)
    assert np.all(variance[centres] > 20.0)
    assert np.median(variance[extra == 0]) == pytest.approx(NOMINAL_NSB + ELECTRONIC**2, rel=0.1)
    # drawn from conditions_seed alone: a new detector (another file of the same condition) has the same stars
    np.testing.assert_array_equal(detector(subarray, n_stars=3, star_nsb_pe=30.0).camera_conditions(1).nsb_rate, rate)


def test_dead_pixels_read_zero_and_hot_pixels_are_noisy(subarray):
    det = detector(subarray, dead_pixel_fraction=0.02, hot_pixel_fraction=0.01, hot_pixel_nsb_pe=40.0)
    rng = np.random.default_rng(2)
    images = [det.respond(1, *spot(rng, 20000), rng) for _ in range(3)]
    n_pixels = len(images[0].image)
    dead = [im.image == 0 for im in images]
    assert dead[0].sum() == round(0.02 * n_pixels)  # no pixel of this bright image is zero by chance
    for image, zero in zip(images, dead):
        np.testing.assert_array_equal(zero, dead[0])  # the same pixels in every event
        assert np.all(image.peak_time[zero] == 0)
        assert image.true_image[zero].sum() > 0  # light reached them; they do not see it
    hot = det.camera_conditions(1).nsb_rate > 40.0
    assert hot.sum() == round(0.01 * n_pixels)
    assert not np.any(hot & dead[0])
    variance = pedestals(det, n_frames=30).var(axis=0)
    assert variance[hot].mean() > 10 * variance[~hot & ~dead[0]].mean()


def test_optical_efficiency_scales_the_intensity(subarray):
    nominal, dim = detector(subarray), detector(subarray, optical_efficiency_scale=0.8)
    light = spot(np.random.default_rng(3), 50000)
    a = nominal.respond(1, *light, np.random.default_rng(4))
    b = dim.respond(1, *light, np.random.default_rng(4), np.random.default_rng(5))
    # binomial thinning of 50000 p.e.: 0.8 to 0.3 %
    assert b.true_image.sum() / a.true_image.sum() == pytest.approx(0.8, abs=0.01)
    assert b.image.sum() / a.image.sum() == pytest.approx(0.8, abs=0.01)
    assert np.all(b.true_image <= a.true_image)  # the same p.e., some lost


def test_gain_spread_and_time_offsets_are_fixed_per_pixel(subarray):
    det = detector(subarray, gain_spread=0.1, time_offset_spread=2.0, conditions_seed=7)
    camera = det.camera_conditions(1)
    assert np.std(camera.gain) == pytest.approx(0.1, rel=0.1)
    assert np.std(camera.time_offset) == pytest.approx(2.0, rel=0.1)
    # the same pixel is always brighter or dimmer: compare with the nominal response to the same light
    light = spot(np.random.default_rng(8), 200000)
    a = detector(subarray).respond(1, *light, np.random.default_rng(9))
    b = det.respond(1, *light, np.random.default_rng(9), np.random.default_rng(10))
    bright = a.true_image > 400
    np.testing.assert_allclose(b.image[bright] / a.image[bright], camera.gain[bright], rtol=1e-5)
    shift = b.peak_time[bright] - a.peak_time[bright]
    np.testing.assert_allclose(shift, camera.time_offset[bright], atol=1e-3)
    # another conditions seed, other maps
    other = detector(subarray, gain_spread=0.1, conditions_seed=8).camera_conditions(1)
    assert not np.allclose(other.gain, camera.gain)


def test_conditions_leave_the_nominal_draws_alone(subarray):
    light = spot(np.random.default_rng(11), 3000)
    a = detector(subarray).respond(1, *light, np.random.default_rng(12))
    det = detector(subarray, dead_pixel_fraction=0.05)
    b = det.respond(1, *light, np.random.default_rng(12), np.random.default_rng(13))
    alive = ~det.camera_conditions(1).dead
    np.testing.assert_array_equal(a.image[alive], b.image[alive])
    np.testing.assert_array_equal(a.peak_time[alive], b.peak_time[alive])
    assert detector(subarray).camera_conditions(1) is None


def test_batches_with_conditions_do_not_depend_on_their_order():
    settings = dict(
        n_events=1, seed=3, energy_min=0.3, core_max=150.0, showers_per_batch=8,
        config=Config({"ObservingConditions": {"nsb_scale": 2.0, "optical_efficiency_scale": 0.7}}),
    )
    first = AirShowerSimEventSource(**settings)
    later = AirShowerSimEventSource(**settings)
    later.simulate_batch(1)
    a, b = first.simulate_batch(0).events, later.simulate_batch(0).events
    assert len(a) == len(b) > 0
    for (_, ea), (_, eb) in zip(a, b):
        np.testing.assert_array_equal(ea.dl1.tel[1].image, eb.dl1.tel[1].image)


SHIFT_B = ["--nsb-scale=3", "--stars=3", "--dead-pixel-fraction=0.02", "--optical-efficiency-scale=0.8"]


def _simulate(path, *args):
    argv = [
        f"--output={path}", "--n-events=4", "--seed=5", "--energy-min=0.3", "--energy-max=10", "--core-max=150",
        "--workers=1", "--no-progress", "--AirShowerSimEventSource.showers_per_batch=8", *args,
    ]
    return run_tool(SimulateTool(), argv=argv, cwd=path.parent, raises=False)


def test_tool_records_the_conditions(tmp_path):
    nominal, shifted = tmp_path / "nominal.dl1.h5", tmp_path / "shifted.dl1.h5"
    assert _simulate(nominal) == 0
    assert _simulate(shifted, *SHIFT_B, "--conditions-seed=4") == 0
    recorded = read_table(shifted, CONDITIONS_TABLE)
    assert recorded["nsb_scale"][0] == 3.0 and recorded["n_stars"][0] == 3
    assert recorded["dead_pixel_fraction"][0] == 0.02 and recorded["optical_efficiency_scale"][0] == 0.8
    assert recorded["conditions_seed"][0] == 4
    assert recorded["time_offset_spread"].unit == u.ns
    assert not recorded.meta["nominal"]
    off = read_table(nominal, CONDITIONS_TABLE)
    assert off.meta["nominal"] and off["nsb_scale"][0] == 1.0 and off["dead_pixel_fraction"][0] == 0.0
    with TableLoader(shifted) as loader:
        images = loader.read_telescope_events(dl1_images=True)["image"]
    zero = images == 0
    assert np.all(zero.sum(axis=1) == round(0.02 * images.shape[1]))
    assert np.all(zero == zero[0])


def test_unknown_condition_is_refused():
    with pytest.raises(ToolConfigurationError, match=r"unknown configuration key\(s\) ObservingConditions\.typo"):
        SimulateTool().run(["--ObservingConditions.typo=3"], raises=True)
