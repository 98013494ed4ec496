"""The simulator's shortcuts change its speed, not its events: the batched hadronic cascade
draws like the one-proton one, the proton screens reject no shower that triggers, and the
images leave out only the light of points seen far outside the camera."""

import numpy as np
import pytest

from ctapipe_gammalearn.simulation import AirShowerSimEventSource
from ctapipe_gammalearn.simulation.atmosphere import ExponentialAtmosphere
from ctapipe_gammalearn.simulation.cascade import axis_direction, hadronic_cascade, hadronic_cascades

OBS_LEVEL = 2200.0
PROTONS = dict(particle="proton", viewcone_max=3.0, energy_min=0.05, energy_max=50.0, core_max=800.0, zenith=20.0)


def test_one_proton_batch_draws_like_hadronic_cascade():
    atmosphere = ExponentialAtmosphere()
    direction = axis_direction(1.2, 0.3)
    for energy in (0.05, 1.0, 30.0):
        one = hadronic_cascade(
            energy, np.array([10.0, -20.0]), direction, np.random.default_rng(1), atmosphere, OBS_LEVEL
        )
        (batch,) = hadronic_cascades(
            [energy], np.array([[10.0, -20.0]]), direction[None, :], np.random.default_rng(1), atmosphere, OBS_LEVEL
        )
        for name in ("start", "direction", "energy", "start_depth"):
            np.testing.assert_array_equal(getattr(one, name), getattr(batch, name))


def test_batched_cascades_match_one_by_one_statistically():
    atmosphere = ExponentialAtmosphere()
    n, energy = 400, 2.0
    direction = np.tile(axis_direction(np.deg2rad(70.0), 0.0), (n, 1))
    core = np.zeros((n, 2))
    rng = np.random.default_rng(3)
    batch = hadronic_cascades(np.full(n, energy), core, direction, rng, atmosphere, OBS_LEVEL)
    single = [hadronic_cascade(energy, core[0], direction[0], rng, atmosphere, OBS_LEVEL) for _ in range(n)]
    for subs in (batch, single):
        assert len(subs) == n
        assert all(s.energy.sum() <= energy * (1 + 1e-9) for s in subs)
        # the sub-showers of each proton start on or below its entry point, each above ground
        assert all(np.all(s.start[:, 2] > 0) for s in subs if len(s))
    em_b, em_s = (np.array([s.energy.sum() for s in subs]) / energy for subs in (batch, single))
    n_b, n_s = (np.array([len(s) for s in subs]) for subs in (batch, single))
    assert abs(em_b.mean() - em_s.mean()) < 4 * np.hypot(em_b.std(), em_s.std()) / np.sqrt(n)
    assert abs(n_b.mean() - n_s.mean()) < 4 * np.hypot(n_b.std(), n_s.std()) / np.sqrt(n)


class _Recording(AirShowerSimEventSource):
    """Records the second screen's estimates and rejects nothing."""

    def _screen_estimate(self, rng, cascades, candidates):
        estimate = super()._screen_estimate(rng, cascades, candidates)
        self.record.append(([c[1] for c in cascades], estimate, candidates.copy()))
        return np.full_like(estimate, np.inf)


@pytest.mark.slow
def test_second_screen_rejects_no_triggered_shower():
    source = _Recording(seed=4, **PROTONS)
    efficiency = np.array([source.detector.photon_detection_efficiency.tel[t] for t in source._tel_index])
    threshold = source.screen_margin * source.min_expected_pe
    n_triggered = 0
    for index in range(6):
        source.record = []
        batch = source.simulate_batch(index)
        h_first, estimate, light_only = source.record[0]
        estimate = estimate * efficiency[None, :]
        for _, event in batch.events:
            rows = np.flatnonzero(np.array(h_first) == event.simulation.shower.h_first_int.to_value("m"))
            assert len(rows) >= 1
            j = [source._tel_index[int(t)] for t in event.trigger.tels_with_trigger]
            # kept by the screen: a muon's telescope, or enough light in view, for one of its rows
            assert any(np.any(~light_only[r, j] | (estimate[r, j] >= threshold)) for r in rows)
            n_triggered += 1
    assert n_triggered >= 10


def test_proton_screens_and_view_margins_leave_gammas_alone():
    gamma = dict(particle="gamma", wobble=0.4, energy_min=0.1, energy_max=10.0, core_max=300.0)
    default = AirShowerSimEventSource(n_events=6, seed=2, **gamma)
    off = AirShowerSimEventSource(
        n_events=6, seed=2, screen_points=0, quick_fov_margin=None, image_fov_margin=0.0, screen_fov_margin=0.0,
        **gamma,
    )
    images = [[e.dl1.tel[1].image for e in source] for source in (default, off)]
    assert len(images[0]) == 6
    for a, b in zip(*images):
        np.testing.assert_array_equal(a, b)


def test_proton_screens_keep_seeded_runs_reproducible():
    runs = [[e.dl1.tel[1].image for e in AirShowerSimEventSource(n_events=3, seed=9, **PROTONS)] for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def _offsets_deg(source, points, tel_id):
    """Angle between the pointing and each point's axis position seen from the telescope, deg."""
    seen = points.axis_position - source._tel_positions[source._tel_index[tel_id]][None, :]
    cos = (seen @ source._pointing_vector) / np.linalg.norm(seen, axis=1)
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_images_leave_out_only_the_light_seen_far_outside_the_camera():
    source = AirShowerSimEventSource(n_events=1, seed=0, **PROTONS)
    light = source.shower_model.shower(
        np.random.default_rng(5), "proton", 3.0, *source._pointing, 150.0, 80.0, source.observation_level
    )
    pe, near = source._light_in_view(light.points, 1)
    full = source._expected_pe_of(light.points, 1)
    offset = _offsets_deg(source, light.points, 1) - source.detector.camera_fov_radius(1)
    beyond = offset > source.image_fov_margin
    assert beyond.any() and (~beyond).any()
    assert np.all(pe[beyond] == 0)
    np.testing.assert_allclose(pe[~beyond], full[~beyond])
    np.testing.assert_array_equal(near, offset <= source.screen_fov_margin)


def test_batched_light_in_view_matches_one_shower_at_a_time():
    source = AirShowerSimEventSource(n_events=1, seed=0, **PROTONS)
    rng = np.random.default_rng(8)
    energy, alt, az, core_x, core_y = source._sample_primaries(rng, 12)
    showers = source.shower_model.shower_batch(
        rng, "proton", energy, alt, az, core_x, core_y, source.observation_level
    )
    candidates = np.ones((12, 1), dtype=bool)
    candidates[::3] = False
    expected, near_camera = source._expected_pe(showers, candidates)
    for k, light in enumerate(showers.lights):
        one = expected[0][showers.bounds[k] : showers.bounds[k + 1]]
        if not candidates[k, 0]:
            assert np.all(one == 0) and near_camera[0][k] == 0
            continue
        pe, near = source._light_in_view(light.points, 1)
        np.testing.assert_allclose(one, pe)
        assert near_camera[0][k] == pytest.approx(pe[near].sum())
