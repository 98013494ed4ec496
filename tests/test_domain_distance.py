"""ctapipe-gammalearn-domain-distance: proxy A-distance, feature shifts, t-SNE figure, bad inputs."""

import json

import numpy as np
import pytest
from astropy.table import Table
from ctapipe.core import run_tool
from test_data_sim import simulate
from test_domain_adaptation import noisy_copy

from ctapipe_gammalearn.evaluation.domain_distance import a_distance, feature_shift_table
from ctapipe_gammalearn.tools.domain_distance import DomainDistanceTool

LOOSE_CUT = "TrainingQualityQuery:\n  quality_criteria: [[cut, 'hillas_intensity > 0']]\n"


def test_a_distance_of_one_law_is_near_zero_and_of_separable_laws_near_two():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 10))
    same = a_distance(x[:200], x[200:], seed=1)
    assert abs(same["a_distance"]) < 0.3  # error 0.5 +- 0.035 on 400 tested events
    assert same["n_source"] == same["n_target"] == 200
    assert same["a_distance"] == pytest.approx(2 * (1 - 2 * same["classifier_error"]))
    shifted = a_distance(x[:200], x[200:] + 3.0, seed=1)
    assert shifted["classifier_error"] < 0.02 and shifted["a_distance"] > 1.9
    partly = a_distance(x[:200], x[200:] + 0.5, seed=1)
    assert same["a_distance"] < partly["a_distance"] < shifted["a_distance"]
    unbalanced = a_distance(x[:300], x[300:] + 3.0, seed=1)  # subsampled to 100 + 100
    assert unbalanced["n_source"] == unbalanced["n_target"] == 100 and unbalanced["n_source_available"] == 300


def test_feature_shift_table():
    rng = np.random.default_rng(0)
    source = Table({"intensity": rng.lognormal(5, 1, 300), "nsb_level": rng.normal(1.5, 0.1, 300)})
    target = Table({"intensity": rng.lognormal(5, 1, 300), "nsb_level": rng.normal(3.0, 0.1, 300)})
    table = feature_shift_table(source, target)
    row = {name: i for i, name in enumerate(table["feature"])}
    assert set(row) == {"intensity", "nsb_level"}
    nsb, intensity = table[row["nsb_level"]], table[row["intensity"]]
    assert nsb["relative_median_shift"] == pytest.approx(1.0, abs=0.05)
    assert nsb["ks_statistic"] > 0.99 and intensity["ks_statistic"] < 0.15
    assert abs(intensity["standardised_mean_difference"]) < 0.2 < nsb["standardised_mean_difference"]


@pytest.fixture(scope="module")
def shift_setup(tmp_path_factory, lst1_subarray):
    """One simulated gamma file, a copy with strong extra Poisson noise, and an untrained tiny network."""
    import torch

    from ctapipe_gammalearn.lattice import Lattice
    from ctapipe_gammalearn.nn.physnet import GammaPhysNet
    from ctapipe_gammalearn.training.checkpoint import CHECKPOINT_BEST, Keys, save_checkpoint

    directory = tmp_path_factory.getbasetemp() / "gammalearn_simulated"
    directory.mkdir(exist_ok=True)
    nominal = simulate(directory, "gamma", 120, 21, obs_id=21)
    base = tmp_path_factory.mktemp("domain_distance")
    shifted = noisy_copy(nominal, base / "shifted.dl1.h5", 10.0)
    geometry = lst1_subarray.tel[1].camera.geometry
    lattice = Lattice.from_geometry(geometry)
    torch.manual_seed(0)
    model = GammaPhysNet(lattice, preset="small", channels=(4, 8), blocks=(1, 1), head_hidden=8)
    run = base / "run"
    run.mkdir()
    save_checkpoint({Keys.MODEL_STATE: model.state_dict(), Keys.MODEL_CONFIG: model.config,
                     Keys.LATTICE: lattice.to_dict(), Keys.TELESCOPE_TYPE: "LST_LST_LSTCam", Keys.TRAINING: {}},
                    run / CHECKPOINT_BEST)
    config = base / "cuts.yaml"
    config.write_text(LOOSE_CUT)
    return nominal, shifted, run, config, base


def _args(source, target, model, out, config, *extra):
    return [f"--source={source}", f"--target={target}", f"--model={model}", f"--output-dir={out}",
            f"--config={config}", "--no-progress", f"--cache-dir={out.parent / 'cache'}",
            f"--provenance-log={out.parent / (out.name + '.provenance.log')}", *extra]


def test_halves_of_one_file_are_one_domain(shift_setup, single_torch_thread):
    """The features of two random halves of one file: A-distance near 0."""
    from ctapipe_gammalearn.data import InputFile, TrainingQualityQuery, build_cache
    from ctapipe_gammalearn.training.domain import cache_features, load_network

    nominal, _, run, _, base = shift_setup
    model, telescope_type, _, _ = load_network(run)
    query = TrainingQualityQuery(quality_criteria=[("cut", "hillas_intensity > 0")])
    cache = build_cache([InputFile(nominal, -1)], base / "cache", telescope_type, query, progress=False,
                        labelled=False)
    assert len(cache) >= 80
    features = cache_features(model, cache, np.arange(len(cache)))
    values = []
    for seed in range(5):  # five random splits in halves
        order = np.random.default_rng(seed).permutation(len(features))
        half = len(order) // 2
        values.append(a_distance(features[order[:half]], features[order[half:]], seed=seed)["a_distance"])
    # ~45 events per half: one split measures the error 0.5 to +-0.05, A to +-0.2; five, A to +-0.1
    assert abs(np.mean(values)) < 0.35 and max(np.abs(values)) < 0.8, values


def test_nominal_against_shifted_copy(shift_setup, single_torch_thread):
    nominal, shifted, run, config, base = shift_setup
    out = base / "shifted_out"
    assert run_tool(DomainDistanceTool(), _args(nominal, shifted, run, out, config), raises=True) == 0
    result = json.loads((out / "domain_distance.json").read_text())
    for key in ("a_distance", "classifier_error", "n_source", "n_target"):
        assert key in result
    assert result["a_distance"] > 1.5 and result["classifier_error"] < 0.125, result
    assert result["n_source"] == result["n_target"] >= 80
    assert result["model"].endswith("checkpoint_best.pt")
    assert (out / "embedding.png").stat().st_size > 5000
    table = Table.read(out / "feature_shift.ecsv")
    rows = {name: row for name, row in zip(table["feature"], table)}
    assert {"intensity", "width", "length", "nsb_level"} <= set(rows)
    # the noisy copy: the same showers (same DL1 parameters), sqrt(1.5^2 + 10) p.e. of noise outside the masks
    assert rows["nsb_level"]["target_median"] > 2 * rows["nsb_level"]["source_median"]
    assert rows["intensity"]["ks_statistic"] == 0.0 and rows["width"]["ks_statistic"] == 0.0
    # refuses to replace the outputs without --overwrite
    before = (out / "domain_distance.json").stat().st_mtime_ns
    assert run_tool(DomainDistanceTool(), _args(nominal, shifted, run, out, config), raises=False) != 0
    assert (out / "domain_distance.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("case", ["other_camera", "no_images", "not_a_checkpoint"])
def test_bad_input_is_one_error_line(case, shift_setup, shared_data, tmp_path, capfd):
    nominal, _, run, config, _ = shift_setup
    target = {
        "other_camera": shared_data / "dl1" / "gamma__gamma_test.dl1.h5",
        "no_images": shared_data / "dl1_params_only" / "aict_cta_gammas_diffuse.dl1.h5",
        "not_a_checkpoint": nominal,
    }[case]
    model = config if case == "not_a_checkpoint" else run
    out = tmp_path / "out"
    assert run_tool(DomainDistanceTool(), _args(nominal, target, model, out, config), raises=False) != 0
    stderr = capfd.readouterr().err
    errors = [line for line in stderr.splitlines() if "ERROR" in line and "--help" not in line]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
    named = config if case == "not_a_checkpoint" else target
    message = {"other_camera": "differs from the training files'", "no_images": "no DL1 images",
               "not_a_checkpoint": "not a readable checkpoint"}[case]
    assert f"{named}: " in errors[0] and message in errors[0], errors[0]
    assert not out.exists()


def test_real_lst1_run_against_lstchain_mc(shift_setup, shared_data, single_torch_thread):
    """A smoke test of the monitor use: the 17 real LST-1 events against lstchain MC, with a model of
    the simulator's LST-1 camera (the same fingerprint as both lstchain cameras). 17 events measure
    nothing about the shift; the tool must read both formats and count what it compared."""
    _, _, run, config, base = shift_setup
    lstchain = shared_data / "lstchain_dl1"
    out = base / "real_out"
    argv = [f"--source={lstchain / 'mc_gamma_17events.dl1.h5'}", f"--source={lstchain / 'mc_proton_17events.dl1.h5'}",
            f"--target={lstchain / 'lst1_observed_run_2021-03_17events.dl1.h5'}", f"--model={run}",
            f"--output-dir={out}", f"--config={config}", "--no-progress", f"--cache-dir={base / 'real_cache'}"]
    assert run_tool(DomainDistanceTool(), argv, raises=True) == 0
    result = json.loads((out / "domain_distance.json").read_text())
    assert 5 <= result["n_target"] == min(result["n_source_available"], result["n_target_available"]) <= 17
    assert -2.0 <= result["a_distance"] <= 2.0 and 0.0 <= result["classifier_error"] <= 1.0
    rows = {row["feature"]: row for row in Table.read(out / "feature_shift.ecsv")}
    assert rows["nsb_level"]["n_target"] == result["n_target_available"]
