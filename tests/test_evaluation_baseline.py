"""The Hillas+RF baseline configs: every key exists in ctapipe's tools, and the chain
train -> ctapipe-apply-models -> benchmark runs on small simulated LST-1 sets."""

import json
from importlib.resources import files

import numpy as np
import pytest
import yaml
from ctapipe.core import Component, Tool, run_tool
from ctapipe.tools.apply_models import ApplyModels
from ctapipe.tools.train_disp_reconstructor import TrainDispReconstructor
from ctapipe.tools.train_energy_regressor import TrainEnergyRegressor
from ctapipe.tools.train_particle_classifier import TrainParticleClassifier

from ctapipe_gammalearn.compat import PARTICLE_TYPE_KEY
from ctapipe_gammalearn.evaluation.events import DEFAULT_QUALITY_CRITERIA

RESOURCES = files("ctapipe_gammalearn") / "resources"
CONFIGS = {
    "baseline_energy_regressor.yaml": TrainEnergyRegressor,
    "baseline_disp_reconstructor.yaml": TrainDispReconstructor,
    "baseline_particle_classifier.yaml": TrainParticleClassifier,
    "baseline_apply.yaml": ApplyModels,
}
#: the baseline must not use what a single telescope cannot provide
STEREO_ONLY = ("HillasReconstructor", "n_telescopes", "multiplicity")


def _components():
    found, todo = {}, [Component]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def _check_section(cls, section, where, components):
    traits = set(cls.class_trait_names(config=True))
    for key, value in section.items():
        if key in traits:
            continue
        assert key in components, f"{where}: {key!r} is neither an option of {cls.__name__} nor a component"
        assert isinstance(value, dict), f"{where}.{key} must be a section"
        _check_section(components[key], value, f"{where}.{key}", components)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_keys_exist(name):
    config = yaml.safe_load((RESOURCES / name).read_text())
    tool = CONFIGS[name]
    components = {**_components(), tool.__name__: tool}
    assert tool.__name__ in config
    for section, values in config.items():
        assert section in components, f"{name}: unknown section {section!r}"
        _check_section(components[section], values, section, components)


@pytest.mark.parametrize("name", [n for n in CONFIGS if "apply" not in n])
def test_mono_features_and_training_cuts(name):
    config = yaml.safe_load((RESOURCES / name).read_text())
    (reco,) = [v for k, v in config.items() if k in ("EnergyRegressor", "ParticleClassifier", "DispReconstructor")]
    text = json.dumps(reco["features"]) + json.dumps(reco["FeatureGenerator"])
    assert not any(word in text for word in STEREO_ONLY)
    cuts = [tuple(c) for c in reco["QualityQuery"]["quality_criteria"]]
    # the γ-PhysNet training selection, plus what Hillas features need
    assert set(DEFAULT_QUALITY_CRITERIA) <= set(cuts)


def _simulate(path, particle, n, seed):
    from ctapipe_gammalearn.tools.simulate import SimulateTool

    argv = [f"--particle={particle}", f"--n-events={n}", f"--seed={seed}", f"--output={path}", "--no-progress"]
    if particle == "proton":
        argv += ["--energy-min=0.05", "--energy-max=50", "--viewcone-max=4"]
    else:
        argv += ["--energy-min=0.03", "--energy-max=30", "--viewcone-max=1"]
    assert run_tool(SimulateTool(), argv=argv, cwd=path.parent, raises=True) == 0


def _train(tool: Tool, config, out, *inputs, small):
    argv = ["-c", str(RESOURCES / config), *inputs, f"--output={out}", *small]
    assert run_tool(tool, argv=argv, cwd=out.parent, raises=True) == 0


@pytest.mark.slow
def test_baseline_chain(tmp_path):
    """Train the three baseline models (few trees), apply them, benchmark the result."""
    gamma, proton = tmp_path / "gamma.dl1.h5", tmp_path / "proton.dl1.h5"
    _simulate(gamma, "gamma", 60, seed=11)
    _simulate(proton, "proton", 40, seed=12)
    few = ["--CrossValidator.n_cross_validations=2", "--n-jobs=1"]
    # merged into the config's forest settings: few small trees for a few dozen events
    trees = '{"n_estimators": 5, "min_samples_leaf": 1, "min_samples_split": 2}'
    energy, disp, clf = (tmp_path / f"{n}.pkl" for n in ("energy", "disp", "clf"))
    _train(TrainEnergyRegressor(), "baseline_energy_regressor.yaml", energy, f"--input={gamma}",
           small=[*few, f"--EnergyRegressor.model_config={trees}"])
    _train(TrainDispReconstructor(), "baseline_disp_reconstructor.yaml", disp, f"--input={gamma}",
           small=[*few, f"--DispReconstructor.norm_config={trees}",
                  f"--DispReconstructor.sign_config={trees}"])
    _train(TrainParticleClassifier(), "baseline_particle_classifier.yaml", clf, f"--signal={gamma}",
           f"--background={proton}", small=[*few, f"--ParticleClassifier.model_config={trees}"])

    dl2 = []
    for dl1 in (gamma, proton):
        out = dl1.with_name(dl1.name.replace("dl1", "dl2"))
        argv = ["-c", str(RESOURCES / "baseline_apply.yaml"), f"--input={dl1}", f"--output={out}",
                f"--reconstructor={energy}", f"--reconstructor={disp}", f"--reconstructor={clf}"]
        assert run_tool(ApplyModels(), argv=argv, cwd=tmp_path, raises=True) == 0
        dl2.append(out)

    from ctapipe_gammalearn.tools.benchmark import BenchmarkTool

    report = tmp_path / "report"
    argv = [*(f"--input={p}" for p in dl2), f"--output-dir={report}", "--bins-per-decade=1"]
    assert run_tool(BenchmarkTool(), argv=argv, cwd=tmp_path, raises=True) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["references"]["mono"] == {
        "energy": "RandomForestRegressor",
        PARTICLE_TYPE_KEY: "RandomForestClassifier",
        "geometry": "disp",
    }
    mono = metrics["mono"]
    assert mono["RandomForestRegressor"]["energy"]["overall"]["valid_fraction"] == 1.0
    assert np.isfinite(mono["RandomForestRegressor"]["energy"]["overall"]["energy_resolution"])
    assert np.isfinite(mono["disp"]["geometry"]["overall"]["angular_resolution_deg"])
    # applied to its own training events, the classifier must separate them
    assert mono["RandomForestClassifier"][PARTICLE_TYPE_KEY]["overall"]["auc"] > 0.6
