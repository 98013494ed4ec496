"""ctapipe's own Hillas+RF training tools run unchanged on simulated mono LST-1 files."""

import pytest
from ctapipe.core import run_tool

from ctapipe_gammalearn.tools.simulate import SimulateTool

FEATURES = """[hillas_intensity, hillas_width, hillas_length, hillas_r, hillas_skewness, timing_slope,
      leakage_intensity_width_2, concentration_cog, morphology_n_pixels]"""
QUALITY = """
      quality_criteria:
        - ["enough light", "hillas_intensity > 50"]
        - ["valid width", "hillas_width > 0"]"""
CONFIG = f"""
TrainEnergyRegressor:
  CrossValidator: {{n_cross_validations: 2, rng_seed: 1}}
  EnergyRegressor:
    model_cls: RandomForestRegressor
    model_config: {{n_estimators: 5, max_depth: 5}}
    QualityQuery:{QUALITY}
    features: {FEATURES}
TrainParticleClassifier:
  CrossValidator: {{n_cross_validations: 2, rng_seed: 1}}
  ParticleClassifier:
    model_cls: RandomForestClassifier
    model_config: {{n_estimators: 5, max_depth: 5}}
    QualityQuery:{QUALITY}
    features: {FEATURES}
TrainDispReconstructor:
  CrossValidator: {{n_cross_validations: 2, rng_seed: 1}}
  DispReconstructor:
    norm_cls: RandomForestRegressor
    norm_config: {{n_estimators: 5, max_depth: 5}}
    sign_cls: RandomForestClassifier
    sign_config: {{n_estimators: 5, max_depth: 5}}
    QualityQuery:{QUALITY}
    features: {FEATURES}
"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    base = tmp_path_factory.mktemp("baseline")
    files = {}
    for particle, seed, extra in (
        ("gamma", 1, ["--viewcone-max=1.5", "--core-max=300", "--energy-min=0.05"]),
        ("proton", 2, ["--viewcone-max=3", "--core-max=400", "--energy-min=0.2"]),
    ):
        path = base / f"{particle}.dl1.h5"
        argv = [
            f"--particle={particle}",
            "--n-events=50",
            f"--seed={seed}",
            f"--output={path}",
            "--no-progress",
            *extra,
        ]
        assert run_tool(SimulateTool(), argv=argv, cwd=base) == 0
        files[particle] = path
    config = base / "baseline.yaml"
    config.write_text(CONFIG)
    return base, files, config


@pytest.mark.slow
def test_ctapipe_training_tools_accept_simulated_files(simulated):
    from ctapipe.tools.train_disp_reconstructor import TrainDispReconstructor
    from ctapipe.tools.train_energy_regressor import TrainEnergyRegressor
    from ctapipe.tools.train_particle_classifier import TrainParticleClassifier

    base, files, config = simulated
    runs = [
        (TrainEnergyRegressor(), [f"--input={files['gamma']}", f"--output={base / 'energy.pkl'}"]),
        (
            TrainParticleClassifier(),
            [f"--signal={files['gamma']}", f"--background={files['proton']}", f"--output={base / 'classifier.pkl'}"],
        ),
        (TrainDispReconstructor(), [f"--input={files['gamma']}", f"--output={base / 'disp.pkl'}"]),
    ]
    for tool, argv in runs:
        assert run_tool(tool, argv=[f"--config={config}", *argv], cwd=base) == 0, tool.name
    for name in ("energy", "classifier", "disp"):
        assert (base / f"{name}.pkl").stat().st_size > 1000
