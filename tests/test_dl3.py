"""Detection on the real H.E.S.S. DR1 Crab runs (GADF DL3) equals gammapy's reflected-regions analysis."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from ctapipe_gammalearn.evaluation.detection import DetectionInputError

pytest.importorskip("gammapy")
pytest.importorskip("regions")

from ctapipe_gammalearn.evaluation import dl3  # noqa: E402

RUNS = [23523, 23526, 23559, 23592]
#: the Crab Nebula as in gammapy's H.E.S.S. DR1 tutorials
CRAB = SkyCoord(83.63308 * u.deg, 22.01450 * u.deg, frame="icrs")


@pytest.fixture(scope="module")
def hess_dir(shared_data):
    path = shared_data / "dl3_hess_dr1"
    if not path.is_dir():
        pytest.skip(f"no H.E.S.S. DR1 runs at {path}")
    return path


@pytest.fixture(scope="module")
def observations(hess_dir):
    return dl3.read_observations(hess_dir, RUNS)


def _gammapy_reference(observations, on_radius):
    """gammapy's own on/off datasets: one reconstructed-energy bin covering every event."""
    from gammapy.datasets import Datasets, SpectrumDataset
    from gammapy.makers import ReflectedRegionsBackgroundMaker, SpectrumDatasetMaker
    from gammapy.maps import MapAxis, RegionGeom
    from regions import CircleSkyRegion

    axis = MapAxis.from_energy_bounds(1e-3, 1e3, nbin=1, unit="TeV")
    empty = SpectrumDataset.create(geom=RegionGeom.create(region=CircleSkyRegion(CRAB, on_radius), axes=[axis]))
    maker = SpectrumDatasetMaker(selection=["counts"])
    background = ReflectedRegionsBackgroundMaker()
    datasets = Datasets()
    regions = {}
    for obs in observations:
        dataset = maker.run(empty.copy(name=str(obs.obs_id)), obs)
        datasets.append(background.run(dataset, obs))
        found, _ = background.region_finder.run(region=CircleSkyRegion(CRAB, on_radius),
                                                center=obs.get_pointing_icrs(obs.tmid))
        regions[obs.obs_id] = SkyCoord([r.center for r in found])
    return datasets, regions


@pytest.fixture(scope="module")
def reference(observations):
    return _gammapy_reference(observations, dl3.DL3_ON_RADIUS)


def test_counts_per_run_equal_gammapy(observations, reference):
    datasets, regions = reference
    for obs, dataset in zip(observations, datasets):
        row, theta2 = dl3.dl3_run(obs, CRAB)
        info = dataset.info_dict()
        assert row["run_ids"] == [obs.obs_id]
        assert row["n_on"] == info["counts"]
        assert row["n_off"] == info["counts_off"]
        assert row["alpha"] == pytest.approx(float(info["alpha"]), rel=1e-12)
        assert row["n_off_regions"] == len(regions[obs.obs_id])
        assert row["excess"] == pytest.approx(float(info["excess"]), rel=1e-9)
        assert row["significance"] == pytest.approx(float(info["sqrt_ts"]), rel=1e-9)
        assert row["livetime_h"] == pytest.approx(obs.observation_live_time_duration.to_value(u.h))
        # the same off regions as gammapy's
        off = SkyCoord(row["off_ra_deg"] * u.deg, row["off_dec_deg"] * u.deg)
        assert np.max(off.separation(regions[obs.obs_id]).to_value(u.deg)) < 1e-5
        # a real detection of the Crab in 26 min: the θ² peak at 0
        assert row["significance"] > 15
        assert theta2["excess"][0] > 10 * np.sqrt(theta2["n_off"][0] + 1)


def test_stacked_runs_equal_gammapy_stack(hess_dir, reference):
    datasets, _ = reference
    rows, stacked = dl3.dl3_runs(hess_dir, CRAB, RUNS)
    assert [r["run_ids"][0] for r in rows] == RUNS
    # two wobbles at 0.5° (12 off regions) and two at 1.5° (41): different α
    assert len({r["alpha"] for r in rows}) == 2
    info = datasets.stack_reduce().info_dict()
    assert stacked["run_ids"] == RUNS
    assert stacked["n_on"] == info["counts"] and stacked["n_off"] == info["counts_off"]
    # gammapy keeps acceptances in float32
    assert stacked["alpha"] == pytest.approx(float(info["alpha"]), rel=1e-6)
    assert stacked["significance"] == pytest.approx(float(info["sqrt_ts"]), rel=1e-6)
    assert stacked["livetime_h"] == pytest.approx(sum(r["livetime_h"] for r in rows))
    # the two runs of one wobble share α: plain sums
    same = dl3.stack_runs(rows[:2])
    assert same["n_on"] == rows[0]["n_on"] + rows[1]["n_on"] and same["alpha"] == rows[0]["alpha"]


@pytest.mark.parametrize("on_radius", [0.1, 0.2])
def test_other_on_radius_equal_gammapy(observations, on_radius):
    datasets, _ = _gammapy_reference(observations[:1], on_radius * u.deg)
    row, _ = dl3.dl3_run(observations[0], CRAB, on_radius * u.deg)
    info = datasets[0].info_dict()
    assert (row["n_on"], row["n_off"]) == (info["counts"], info["counts_off"])
    assert row["significance"] == pytest.approx(float(info["sqrt_ts"]), rel=1e-9)


def test_fixed_off_regions_and_energy_range(observations):
    row, _ = dl3.dl3_run(observations[0], CRAB, n_off=3)
    assert row["alpha"] == pytest.approx(1 / 3) and row["n_off_regions"] == 3
    above, _ = dl3.dl3_run(observations[0], CRAB, energy_min=1 * u.TeV)
    full, _ = dl3.dl3_run(observations[0], CRAB)
    assert 0 < above["n_on"] < full["n_on"]


def test_dl3_errors_name_the_run(hess_dir, observations, tmp_path):
    far = SkyCoord(CRAB.ra + 10 * u.deg, CRAB.dec)
    with pytest.raises(DetectionInputError, match=r"^obs_id 23523: source at .* outside the field of view"):
        dl3.dl3_run(observations[0], far)
    with pytest.raises(DetectionInputError, match=r"^obs_id 23523: no events left after the cuts of dl3$"):
        dl3.dl3_run(observations[0], CRAB, energy_min=1000 * u.TeV)
    with pytest.raises(DetectionInputError, match=r"runs \[12345\] not in the observation index"):
        dl3.read_observations(hess_dir, [12345])
    with pytest.raises(DetectionInputError, match=r"event lists of runs \[20136\] absent"):
        dl3.read_observations(hess_dir, [20136])
    with pytest.raises(DetectionInputError, match="no such DL3 folder"):
        dl3.read_observations(tmp_path / "nothing")
