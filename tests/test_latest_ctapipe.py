"""A model exported here (torch, this ctapipe) runs in the newest ctapipe line without torch.

The same untrained, seeded γ-PhysNet is applied by ``ctapipe-process`` of this
environment and by the one of the latest environment (``make env-latest``: Python 3.12,
ctapipe 0.32, no torch) on the same real sim_telarray file; the per-telescope and
stereo DL2 tables must agree. The latest environment is found through
``GAMMALEARN_LATEST_VENV`` (``make test`` sets it) or at ``.venv-latest`` beside ``tests/``.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import tables

ROOT = Path(__file__).resolve().parents[1]
CONFIG = files("ctapipe_gammalearn") / "resources" / "gammalearn.yaml"
# real sim_telarray files: 30 bright mono LST-1 images (muon rings), and a stereo LST gamma event
SIMTEL_FILES = {
    "lst_muons": "muon/lst_muons.simtel.zst",
    "lst_gamma_stereo": "gamma/ab14a019_gamma_run000007_za40deg_azm180deg_South_subsystem_lsts_7.0.0_test.simtel.zst",
}
PREFIXES = ("GammaPhysNetEnergy", "GammaPhysNetClassifier", "GammaPhysNetGeometry")
RTOL = 1e-5


def run(argv, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ctapipe_version(python):
    result = run([str(python), "-c", "import ctapipe, sys; print(ctapipe.__version__, *sys.version_info[:2])"], ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    version, major, minor = result.stdout.split()
    return version, (int(major), int(minor))


def dl2_tables(path):
    """GammaPhysNet DL2 tables by (level, prefix, table), whatever ctapipe calls the property group
    (``classification`` up to 0.28, ``particle_type`` from 0.29)."""
    found = {}
    with tables.open_file(path) as h5:
        for level in ("telescope", "subarray"):
            group = f"/dl2/event/{level}"
            if group not in h5:
                continue
            for node in h5.walk_nodes(group, classname="Table"):
                parts = node._v_pathname.split("/")
                prefix = next((p for p in parts if p in PREFIXES), None)
                if prefix is not None:
                    found[(level, prefix, parts[-1])] = node.read()
    return found


@pytest.fixture(scope="module")
def latest():
    """The latest environment: its ctapipe version, Python version and bin/ folder."""
    venv = Path(os.environ.get("GAMMALEARN_LATEST_VENV", ROOT / ".venv-latest"))
    if not (venv / "bin" / "ctapipe-process").exists():
        pytest.skip(f"no latest-ctapipe environment at {venv} (`make env-latest` builds it)")
    version, python = ctapipe_version(venv / "bin" / "python")
    torch_there = run([str(venv / "bin" / "python"), "-c", "import torch"], ROOT)
    assert torch_there.returncode != 0, f"torch is installed in {venv}: it must stay torch-free"
    return version, python, venv / "bin"


@pytest.fixture(scope="module")
def here_version():
    return ctapipe_version(sys.executable)[0]


@pytest.fixture(params=sorted(SIMTEL_FILES))
def simtel(request, shared_data):
    return shared_data / "simtel" / SIMTEL_FILES[request.param]


@pytest.fixture
def exported_model(simtel, tmp_path):
    """An untrained, seeded `small` γ-PhysNet per camera type of the file, exported here (needs torch)."""
    pytest.importorskip("torch")
    from ctapipe.core import run_tool

    from ctapipe_gammalearn.tools.export import ExportTool

    directory = tmp_path / "models"
    directory.mkdir()
    argv = [
        "--init-random",
        "--seed=3",
        f"--input={simtel}",
        "--telescope-type=all",
        "--preset=small",
        f"--output={directory / 'random'}",
    ]
    assert run_tool(ExportTool(), argv, cwd=directory) == 0
    models = sorted(directory.glob("random_*.onnx"))
    assert models
    return models


def test_model_exported_here_gives_same_dl2_in_latest_ctapipe(latest, here_version, simtel, exported_model, tmp_path):
    latest_version, latest_python, latest_bin = latest
    assert latest_version != here_version, "both environments have the same ctapipe"

    def process(bin_dir, name):
        output = tmp_path / f"{name}.dl2.h5"
        (tmp_path / name).mkdir()
        argv = [
            str(bin_dir / "ctapipe-process"),
            f"--config={CONFIG}",
            f"--input={simtel}",
            f"--output={output}",
            "--no-progress",
            "--SimTelEventSource.focal_length_choice=EQUIVALENT",
            "--GammaPhysNetReconstructor.n_threads=1",
            *(f"--GammaPhysNetReconstructor.model_paths={model}" for model in exported_model),
        ]
        result = run(argv, cwd=tmp_path / name)
        assert result.returncode == 0, f"{name} ctapipe-process failed:\n{result.stderr[-4000:]}"
        return output

    # the two runs are independent: one core each
    with ThreadPoolExecutor(2) as pool:
        here = pool.submit(process, Path(sys.executable).parent, "here")
        there = pool.submit(process, latest_bin, "latest")
        here, there = here.result(), there.result()
    expected, got = dl2_tables(here), dl2_tables(there)
    assert sorted(got) == sorted(expected), f"ctapipe {latest_version} wrote other DL2 tables"
    tel_tables = [key for key in expected if key[0] == "telescope"]
    assert {prefix for _, prefix, _ in tel_tables} == set(PREFIXES)

    n_valid = 0
    for key in sorted(expected):
        a, b = expected[key], got[key]
        assert len(a) == len(b) > 0, key
        common = set(a.dtype.names) & set(b.dtype.names)
        for prefix in PREFIXES:
            if prefix == key[1]:
                assert any(name.startswith(prefix) for name in common), key
        for name in sorted(common):
            where = f"{key}: {name} (ctapipe {here_version} vs {latest_version}, Python {latest_python})"
            if np.issubdtype(a[name].dtype, np.floating):
                np.testing.assert_allclose(b[name], a[name], rtol=RTOL, atol=0, equal_nan=True, err_msg=where)
            else:
                np.testing.assert_array_equal(b[name], a[name], err_msg=where)
        valid = [name for name in common if name.endswith("_is_valid")]
        if key[0] == "telescope" and valid:
            n_valid += int(np.sum(a[valid[0]]))
    assert n_valid > 0, "no valid γ-PhysNet prediction to compare"
