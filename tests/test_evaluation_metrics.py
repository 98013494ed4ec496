"""Per-energy-bin metrics on synthetic pyirf-style tables whose true spread is known."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from pyirf.spectral import CRAB_HEGRA
from scipy.stats import norm

from ctapipe_gammalearn.compat import PARTICLE_TYPE_KEY
from ctapipe_gammalearn.evaluation.events import DEFAULT_QUALITY_CRITERIA, TEL_TYPE_COLUMN, reconstructor_events
from ctapipe_gammalearn.evaluation.metrics import (
    angular_benchmark,
    classification_benchmark,
    count_in_bins,
    energy_benchmark,
    energy_bins,
    roc,
)
from ctapipe_gammalearn.evaluation.report import (
    BY_TYPE,
    benchmark_all,
    choose_references,
    format_tables,
    section_metrics,
    section_name,
    telescope_types,
    to_json,
)
from ctapipe_gammalearn.evaluation.sensitivity import method_triples, point_source_sensitivity

N = 20_000
BINS = energy_bins(0.1 * u.TeV, 100 * u.TeV, bins_per_decade=1)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(42)


def _true_energy(rng, n, low=0.1, high=10.0):
    # flat in log10(E) over the first two decades; the last bin stays empty
    return 10 ** rng.uniform(np.log10(low), np.log10(high), n) * u.TeV


def test_energy_resolution_and_bias_match_the_spread(rng):
    sigma, bias = 0.1, 0.05
    true = _true_energy(rng, N)
    events = QTable(
        {
            "true_energy": true,
            "reco_energy": true * (1 + bias + rng.normal(0, sigma, N)),
            "particle_id": np.zeros(N, int),
            "valid": np.ones(N, bool),
        }
    )
    table = energy_benchmark(events, BINS)
    filled = table["n_events"] > 0
    assert np.allclose(table["energy_resolution"][filled], sigma, rtol=0.1)
    assert np.allclose(table["energy_bias"][filled], bias, atol=0.01)
    assert table["n_events"].sum() == N
    # empty bin: no events, NaN metrics
    assert table["n_events"][-1] == 0 and np.isnan(table["energy_resolution"][-1])


def test_invalid_predictions_lower_the_valid_fraction_only(rng):
    true = _true_energy(rng, N)
    valid = rng.uniform(size=N) > 0.25
    events = QTable(
        {
            "true_energy": true,
            "reco_energy": np.where(valid, true.value, np.nan) * u.TeV,
            "particle_id": np.zeros(N, int),
            "valid": valid,
        }
    )
    table = energy_benchmark(events, BINS)
    filled = table["n_events"] > 0
    assert np.allclose(table["valid_fraction"][filled], 0.75, atol=0.03)
    assert np.allclose(table["energy_resolution"][filled], 0.0, atol=1e-9)


def test_protons_do_not_enter_gamma_resolutions(rng):
    true = _true_energy(rng, 200)
    events = QTable(
        {
            "true_energy": true,
            "reco_energy": true * 3,
            "particle_id": np.full(200, 101),
            "valid": np.ones(200, bool),
        }
    )
    table = energy_benchmark(events, BINS)
    assert table["n_events"].sum() == 0
    assert np.all(np.isnan(table["energy_resolution"]))


def test_angular_resolution_is_68_percent_containment(rng):
    sigma = 0.1  # deg per axis: the 68% radius of a 2D Gaussian is sigma * sqrt(-2 ln 0.32)
    theta = np.hypot(rng.normal(0, sigma, N), rng.normal(0, sigma, N))
    events = QTable(
        {
            "true_energy": _true_energy(rng, N),
            "theta": theta * u.deg,
            "particle_id": np.zeros(N, int),
            "valid": np.ones(N, bool),
        }
    )
    table = angular_benchmark(events, BINS)
    filled = table["n_events"] > 0
    expected = sigma * np.sqrt(-2 * np.log(1 - 0.6827))
    assert np.allclose(table["angular_resolution_deg"][filled], expected, rtol=0.05)


def _classified(rng, n, separation):
    is_gamma = rng.uniform(size=n) < 0.5
    score = rng.normal(np.where(is_gamma, separation, 0.0), 1.0)
    return QTable(
        {
            "true_energy": _true_energy(rng, n),
            "gammaness": 1 / (1 + np.exp(-score)),
            "particle_id": np.where(is_gamma, 0, 101),
            "valid": np.ones(n, bool),
        }
    )


def test_auc_of_two_gaussians(rng):
    separation = 1.0  # AUC of N(d, 1) against N(0, 1) is Phi(d / sqrt(2))
    events = _classified(rng, N, separation)
    expected = norm.cdf(separation / np.sqrt(2))
    fpr, tpr, auc = roc(events)
    assert auc == pytest.approx(expected, abs=0.01)
    assert fpr[0] == 0 and tpr[-1] == 1
    table = classification_benchmark(events, BINS, gamma_efficiency=0.7)
    filled = table["n_events"] > 0
    assert np.allclose(table["auc"][filled], expected, atol=0.02)
    # the cut keeps 70 % of gammas; the background passing it follows from the Gaussians
    threshold = separation + norm.ppf(0.3)
    assert np.allclose(table["background_efficiency"][filled], norm.sf(threshold), atol=0.03)
    assert np.isnan(table["auc"][-1]) and table["n_events"][-1] == 0


def test_invalid_classifications_are_rejected(rng):
    events = _classified(rng, 4000, separation=3.0)
    _, _, auc_all = roc(events)
    lost = events["particle_id"] == 0
    events["valid"] = ~lost  # every gamma unclassified: none is kept by any cut
    _, _, auc_lost = roc(events)
    assert auc_lost < 0.01 < 0.9 < auc_all


def test_single_class_and_tiny_bins_give_nan(rng):
    events = _classified(rng, 30, separation=1.0)
    events = events[events["particle_id"] == 0]
    assert np.isnan(roc(events)[2])
    table = classification_benchmark(events, BINS, min_events=10)
    assert np.all(np.isnan(table["auc"]))
    assert np.all(np.isnan(table["background_efficiency"]))


def test_count_in_bins_ignores_overflow():
    energies = [0.05, 0.2, 0.3, 5, 500] * u.TeV
    assert count_in_bins(energies, BINS).tolist() == [2, 1, 0]  # 0.05 and 500 TeV fall outside


def _dl2_like(rng, n):
    """A joined telescope/subarray table as the loader returns it."""
    is_gamma = rng.uniform(size=n) < 0.5
    true = _true_energy(rng, n)
    table = QTable(
        {
            "true_energy": true,
            "true_alt": np.full(n, 70.0) * u.deg,
            "true_az": np.full(n, 10.0) * u.deg,
            "true_shower_primary_id": np.where(is_gamma, 0, 101),
        }
    )
    for prefix, sigma in (("RandomForestRegressor", 0.3), ("GammaPhysNetEnergy", 0.1)):
        table[f"{prefix}_tel_energy"] = true * np.exp(rng.normal(0, sigma, n))
        table[f"{prefix}_tel_is_valid"] = np.ones(n, bool)
    for prefix, sigma in (("DispReconstructor", 0.3), ("GammaPhysNetGeometry", 0.1)):
        table[f"{prefix}_tel_alt"] = (70 + rng.normal(0, sigma, n)) * u.deg
        table[f"{prefix}_tel_az"] = (10 + rng.normal(0, sigma, n) / np.cos(np.radians(70))) * u.deg
        table[f"{prefix}_tel_is_valid"] = np.ones(n, bool)
    for prefix, sep in (("RandomForestClassifier", 1.0), ("GammaPhysNetClassifier", 3.0)):
        table[f"{prefix}_tel_prediction"] = 1 / (1 + np.exp(-rng.normal(np.where(is_gamma, sep, 0), 1)))
        table[f"{prefix}_tel_is_valid"] = np.ones(n, bool)
    return table


_FOUND_MONO = {
    "mono": {
        "energy": ["GammaPhysNetEnergy", "RandomForestRegressor"],
        "geometry": ["DispReconstructor", "GammaPhysNetGeometry"],
        PARTICLE_TYPE_KEY: ["GammaPhysNetClassifier", "RandomForestClassifier"],
    },
    "stereo": {"energy": [], "geometry": [], PARTICLE_TYPE_KEY: []},
}


def test_benchmark_all_side_by_side(rng):
    events = _dl2_like(rng, 5000)
    found = _FOUND_MONO
    metrics, tables = benchmark_all(events, events[:0], found, BINS)
    refs = choose_references(found)
    assert refs["mono"] == {
        "energy": "RandomForestRegressor",
        "geometry": "DispReconstructor",
        PARTICLE_TYPE_KEY: "RandomForestClassifier",
    }
    mono = metrics["mono"]
    assert (
        mono["GammaPhysNetEnergy"]["energy"]["overall"]["energy_resolution"]
        < mono["RandomForestRegressor"]["energy"]["overall"]["energy_resolution"]
    )
    assert (
        mono["GammaPhysNetGeometry"]["geometry"]["overall"]["angular_resolution_deg"]
        < mono["DispReconstructor"]["geometry"]["overall"]["angular_resolution_deg"]
    )
    assert (
        mono["GammaPhysNetClassifier"][PARTICLE_TYPE_KEY]["overall"]["auc"]
        > mono["RandomForestClassifier"][PARTICLE_TYPE_KEY]["overall"]["auc"]
    )
    assert metrics["stereo"] == {}
    text = format_tables(tables, refs, metrics)
    assert "GammaPhysNetEnergy/ref" in text and "[mono] energy resolution" in text
    # empty bins are left out of the printed table, the overall row is added
    block = text.split("[mono] energy resolution")[1].split("\n\n")[0]
    assert block.count("\n") == 2 + int(np.sum(tables["mono"]["energy"]["GammaPhysNetEnergy"]["n_events"] > 0)) + 1
    n_events = mono["GammaPhysNetEnergy"]["energy"]["overall"]["n_events"]
    assert block.splitlines()[-1].split()[:2] == ["all", str(n_events)]
    # JSON has no NaN (null instead) and keeps the empty last bin
    encoded = to_json(metrics)
    assert "NaN" not in encoded
    last = mono["GammaPhysNetEnergy"]["energy"]["bins"][-1]
    assert last["n_events"] == 0 and last["energy_resolution"] is None


def test_reconstructor_events_marks_missing_columns_invalid(rng):
    events = _dl2_like(rng, 50)
    table = reconstructor_events(events, "NotThere", "energy", "mono")
    assert not table["valid"].any()
    table = reconstructor_events(events, "GammaPhysNetGeometry", "geometry", "mono")
    assert table["valid"].all() and table["theta"].unit == u.deg


def test_default_selection_is_the_training_selection():
    # read from the source: importing ctapipe_gammalearn.data pulls in torch
    import ast
    from importlib.util import find_spec
    from pathlib import Path

    tree = ast.parse(Path(find_spec("ctapipe_gammalearn").origin).with_name("data").joinpath("cuts.py").read_text())
    (training,) = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DEFAULT_QUALITY_CRITERIA"
    ]
    assert [tuple(c) for c in DEFAULT_QUALITY_CRITERIA] == [tuple(c) for c in training]


@pytest.mark.parametrize("n", [0, 3])
def test_no_or_few_events_give_empty_metrics(rng, n):
    events = _dl2_like(rng, 50)[:n]
    found = {
        "mono": {
            "energy": ["GammaPhysNetEnergy"],
            "geometry": ["GammaPhysNetGeometry"],
            PARTICLE_TYPE_KEY: ["GammaPhysNetClassifier"],
        },
        "stereo": {"energy": [], "geometry": [], PARTICLE_TYPE_KEY: []},
    }
    metrics, tables = benchmark_all(events, events[:0], found, BINS)
    mono = metrics["mono"]
    n_gamma = int(np.sum(events["true_shower_primary_id"] == 0))
    assert sum(b["n_events"] for b in mono["GammaPhysNetEnergy"]["energy"]["bins"]) == n_gamma
    assert mono["GammaPhysNetEnergy"]["energy"]["overall"]["energy_resolution"] is None  # < min_events
    assert mono["GammaPhysNetGeometry"]["geometry"]["overall"]["angular_resolution_deg"] is None
    assert mono["GammaPhysNetClassifier"][PARTICLE_TYPE_KEY]["overall"]["background_efficiency"] is None
    assert "[mono] ROC AUC" in format_tables(tables, choose_references(found), metrics)


def test_one_telescope_type_keeps_the_pooled_report_only(rng):
    events = _dl2_like(rng, 500)
    without, _ = benchmark_all(events, events[:0], _FOUND_MONO, BINS)
    events[TEL_TYPE_COLUMN] = "LST_LST_LSTCam"
    metrics, tables = benchmark_all(events, events[:0], _FOUND_MONO, BINS)
    assert list(tables) == ["mono", "stereo"]
    assert to_json(metrics) == to_json(without)


def test_mixed_array_is_split_per_telescope_type(rng):
    events = _dl2_like(rng, 4000)
    lst = rng.uniform(size=len(events)) < 0.3
    events[TEL_TYPE_COLUMN] = np.where(lst, "LST_LST_LSTCam", "MST_MST_NectarCam")
    # the reference energy model only exists for the MSTs: left out of the LST results
    events["RandomForestRegressor_tel_is_valid"] = ~lst
    events["RandomForestRegressor_tel_energy"][lst] = np.nan
    metrics, tables = benchmark_all(events, events[:0], _FOUND_MONO, BINS)
    assert list(tables) == ["mono", "mono/LST_LST_LSTCam", "mono/MST_MST_NectarCam", "stereo"]
    by_type = metrics[BY_TYPE]
    assert sorted(by_type) == telescope_types(events) == ["LST_LST_LSTCam", "MST_MST_NectarCam"]
    assert "RandomForestRegressor" not in by_type["LST_LST_LSTCam"]
    assert "RandomForestRegressor" in metrics["mono"] and "RandomForestRegressor" in by_type["MST_MST_NectarCam"]
    for tel_type, mask in (("LST_LST_LSTCam", lst), ("MST_MST_NectarCam", ~lst)):
        alone, _ = benchmark_all(events[mask], events[:0], _FOUND_MONO, BINS)
        assert BY_TYPE not in alone
        expected = {p: kinds for p, kinds in alone["mono"].items() if p in by_type[tel_type]}
        assert to_json(by_type[tel_type]) == to_json(expected)
    n_gamma = [sum(b["n_events"] for b in by_type[t]["GammaPhysNetEnergy"]["energy"]["bins"]) for t in by_type]
    assert sum(n_gamma) == sum(b["n_events"] for b in metrics["mono"]["GammaPhysNetEnergy"]["energy"]["bins"]) > 0
    text = format_tables(tables, choose_references(_FOUND_MONO), metrics)
    assert "[mono] energy resolution (reference: RandomForestRegressor)" in text
    # without its reference a type's table has no ratio column
    lst_block = text.split("[mono/LST_LST_LSTCam] energy resolution")[1].split("\n\n")[0]
    assert "(reference" not in lst_block.splitlines()[0] and "/ref" not in lst_block
    assert "[mono/MST_MST_NectarCam] ROC AUC (reference: RandomForestClassifier)" in text
    assert section_metrics(metrics, "mono/MST_MST_NectarCam") is by_type["MST_MST_NectarCam"]
    assert section_name("mono", "MST_MST_NectarCam") == "mono/MST_MST_NectarCam"


def _irf_events(rng, n, separation, signal):
    """ctapipe.irf-style events: point-like gammas at the centre, or protons
    spread over the field of view; ``separation`` sets the gammaness quality."""
    true = _true_energy(rng, n, 0.1, 100.0)
    table = QTable()
    table["true_energy"] = true
    table["reco_energy"] = true * np.exp(rng.normal(0, 0.1, n))
    if signal:
        table["theta"] = np.abs(rng.normal(0, 0.07, n)) * u.deg
        table["reco_source_fov_offset"] = table["theta"]
    else:
        table["reco_source_fov_offset"] = 1.5 * np.sqrt(rng.uniform(size=n)) * u.deg  # uniform on the disc
        table["theta"] = table["reco_source_fov_offset"]
    table["true_source_fov_offset"] = table["reco_source_fov_offset"]
    table["gh_score"] = 1 / (1 + np.exp(-rng.normal(separation / 2 if signal else -separation / 2, 1, n)))
    table["weight"] = np.full(n, 1.0 if signal else 200.0)
    return table


def test_better_classifier_gives_better_sensitivity(rng):
    bins = energy_bins(0.1 * u.TeV, 100 * u.TeV, bins_per_decade=2)
    results = {}
    for name, separation in (("sharp", 6.0), ("blurry", 1.0)):
        signal = _irf_events(rng, 6000, separation, signal=True)
        background = _irf_events(rng, 6000, separation, signal=False)
        results[name] = point_source_sensitivity(signal, background, bins)
    sharp, blurry = results["sharp"], results["blurry"]
    assert len(sharp) == len(bins) - 1
    assert np.all(sharp["gh_cut"] >= 0) and np.all(sharp["gh_cut"] <= 1)
    assert np.all(sharp["theta_cut"] > 0 * u.deg)
    both = np.isfinite(sharp["relative_sensitivity"]) & np.isfinite(blurry["relative_sensitivity"])
    assert both.sum() >= 3
    # background is left after the cuts, so the classifier matters
    assert np.all(blurry["n_background"][both] > 0)
    assert np.all(sharp["relative_sensitivity"][both] < blurry["relative_sensitivity"][both])
    # the flux sensitivity is the relative one times the Crab flux at pyirf's (linear) bin centre
    center = (bins[:-1] + bins[1:]) / 2
    expected = (sharp["relative_sensitivity"] * CRAB_HEGRA(center)).to(sharp["flux_sensitivity"].unit)
    assert u.allclose(sharp["flux_sensitivity"][both], expected[both], rtol=1e-6)


def test_methods_pair_by_name():
    found = {
        "stereo": {
            "energy": ["GammaPhysNetEnergy", "RandomForestRegressor"],
            "geometry": ["GammaPhysNetGeometry", "disp"],
            PARTICLE_TYPE_KEY: ["GammaPhysNetClassifier", "OrphanClassifier", "RandomForestClassifier"],
        }
    }
    methods = method_triples(found, choose_references(found))
    assert methods == {
        "reference": {"gammaness": "RandomForestClassifier", "energy": "RandomForestRegressor", "geometry": "disp"},
        "GammaPhysNet": {
            "gammaness": "GammaPhysNetClassifier",
            "energy": "GammaPhysNetEnergy",
            "geometry": "GammaPhysNetGeometry",
        },
    }
    assert method_triples({"stereo": {"energy": ["A"], "geometry": [], PARTICLE_TYPE_KEY: []}}, {}) == {}


def test_benchmark_code_does_not_import_torch():
    """The benchmark shares the training cuts but must run with an inference-only install.

    torch is made unimportable rather than looked for in ``sys.modules``:
    scikit-learn (through ctapipe.reco) loads its torch array-API shim whenever
    torch is installed, which an install without torch never sees.
    """
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import ctapipe_gammalearn.evaluation, ctapipe_gammalearn.evaluation.writer\n"
        "import ctapipe_gammalearn.tools.benchmark\n"
        "from ctapipe_gammalearn.data import DEFAULT_QUALITY_CRITERIA\n"
        "torch_side = ('ctapipe_gammalearn.nn', 'ctapipe_gammalearn.training')\n"
        "torch_side = [m for m in sys.modules if m.startswith(torch_side)]\n"
        "assert not torch_side, torch_side\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
