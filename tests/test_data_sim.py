"""Small simulated LST-1 DL1 files shared by the data and training tests, and their cache."""

import numpy as np
import pytest


def simulate(directory, particle, n_events, seed, obs_id=1, extra=()):
    """One DL1 file from ``ctapipe-gammalearn-simulate`` (made once per session and directory)."""
    from ctapipe.core import run_tool

    from ctapipe_gammalearn.tools.simulate import SimulateTool

    path = directory / f"{particle}_s{seed}_o{obs_id}.dl1.h5"
    if not path.exists():
        argv = [
            f"--particle={particle}",
            f"--n-events={n_events}",
            f"--seed={seed}",
            f"--obs-id={obs_id}",
            "--energy-min=0.05",
            "--energy-max=20",
            "--viewcone-max=1.5",
            f"--output={path}",
            f"--provenance-log={directory / 'simulate.provenance.log'}",
            "--no-progress",
            *extra,
        ]
        assert run_tool(SimulateTool(), argv=argv, cwd=directory) == 0
    return path


def simulated_dl1(tmp_path_factory, n_events=30):
    """Two gamma and two proton files (different seeds and obs_ids), made once per session."""
    directory = tmp_path_factory.getbasetemp() / "gammalearn_simulated"
    directory.mkdir(exist_ok=True)
    gammas = [simulate(directory, "gamma", n_events, seed, obs_id=seed) for seed in (1, 2)]
    protons = [simulate(directory, "proton", n_events, seed, obs_id=seed) for seed in (3, 4)]
    return gammas, protons


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory):
    return simulated_dl1(tmp_path_factory)


def test_simulated_cache_labels(sim_files, tmp_path):
    """Labels of simulated diffuse events are physical: offsets within the view cone,
    impacts within the simulated core range, class from the file role."""
    from ctapipe_gammalearn.data import InputFile, build_cache

    gammas, protons = sim_files
    inputs = [InputFile(p, 0) for p in gammas] + [InputFile(p, 1) for p in protons]
    cache = build_cache(inputs, tmp_path, progress=False)
    assert cache.telescope_type == "LST_LST_LSTCam"
    assert cache.n_pixels == 1855
    offset = np.hypot(*cache["fov_offset"].T)
    assert offset.max() < 1.6  # viewcone 1.5 deg (flat-sky approximation margin)
    assert offset.max() > 0.3  # diffuse, not a point source
    assert np.abs(cache["impact"]).max() < 1100  # core within 500 m of the array centre
    assert set(np.unique(cache["particle"])) == {0, 1}
    per_file = np.bincount(cache["file_index"], minlength=4)
    assert list(per_file) == [f["n_events"] for f in cache.meta["files"]]
    assert np.all(cache["particle"][cache["file_index"] < 2] == 0)
    assert len(np.unique(cache["obs_id"])) == 4
