"""Everything but the training side imports and registers without torch.

Each check runs in a fresh interpreter in which ``import torch`` fails, like an
inference-only install. ctapipe drops plugins that fail to import with only a log
line, so the entry points are checked through ctapipe's own discovery too.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())

# the torch side of the package: everything else must import without it
TORCH_SIDE = ("ctapipe_gammalearn.nn", "ctapipe_gammalearn.training")
TORCH_TOOLS = ("ctapipe_gammalearn.tools.train", "ctapipe_gammalearn.tools.export")

BLOCK_TORCH = """
import sys

class _NoTorch:  # any import of torch fails, as on a machine without it
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r} (blocked: torch-free check)")

sys.meta_path.insert(0, _NoTorch())
"""


def run_without_torch(code, timeout=600):
    """Run ``code`` with torch blocked; it prints one JSON document, returned here."""
    script = BLOCK_TORCH + textwrap.dedent(code)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def torch_side(name):
    return name.startswith(tuple(p + "." for p in TORCH_SIDE)) or name in TORCH_SIDE + TORCH_TOOLS


@pytest.fixture(scope="module")
def import_report():
    code = f"""
    import importlib, json, pkgutil, sys, traceback
    import ctapipe_gammalearn

    torch_side = {TORCH_SIDE!r}
    torch_tools = {TORCH_TOOLS!r}
    names = []
    # walk_packages imports each package to list it; never descend into the torch side
    for info in pkgutil.walk_packages(ctapipe_gammalearn.__path__, "ctapipe_gammalearn.",
                                      onerror=lambda name: None):
        name = info.name
        if name in torch_side + torch_tools or name.startswith(tuple(p + "." for p in torch_side)):
            continue
        names.append(name)
    failed = {{}}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            failed[name] = traceback.format_exc(limit=-3)
    print(json.dumps({{"modules": names, "failed": failed, "torch_loaded": "torch" in sys.modules}}))
    """
    return run_without_torch(code)


def test_every_torch_free_module_imports_without_torch(import_report):
    modules = import_report["modules"]
    # the walk found the package, not an empty stand-in
    for expected in (
        "ctapipe_gammalearn.reco",
        "ctapipe_gammalearn.runtime",
        "ctapipe_gammalearn.tools.apply",
        "ctapipe_gammalearn.tools.config",
        "ctapipe_gammalearn.simulation.source",
        "ctapipe_gammalearn.evaluation.metrics",
        "ctapipe_gammalearn.data.inputs",
    ):
        assert expected in modules
    assert not any(torch_side(name) for name in modules)
    assert import_report["failed"] == {}, "\n".join(
        f"{name}:\n{tb}" for name, tb in import_report["failed"].items()
    )
    assert not import_report["torch_loaded"]


def test_entry_points_are_discovered_without_torch():
    code = """
    import json, sys
    from importlib.metadata import entry_points

    from ctapipe.io import EventSource
    from ctapipe.reco import Reconstructor

    groups = {}
    for group in ("ctapipe_reco", "ctapipe_io", "console_scripts"):
        for ep in entry_points(group=group):
            if ep.value.startswith("ctapipe_gammalearn"):
                groups.setdefault(group, []).append(ep.name)
    reco = Reconstructor.non_abstract_subclasses()
    sources = EventSource.non_abstract_subclasses()
    scripts = {}
    for ep in entry_points(group="console_scripts"):
        if ep.value.startswith("ctapipe_gammalearn"):
            try:
                scripts[ep.name] = callable(ep.load())
            except ImportError as error:
                scripts[ep.name] = str(error)
    print(json.dumps({
        "groups": groups,
        "reco": "GammaPhysNetReconstructor" in reco,
        "reco_module": reco["GammaPhysNetReconstructor"].__module__ if "GammaPhysNetReconstructor" in reco else None,
        "source": "AirShowerSimEventSource" in sources,
        "scripts": scripts,
        "torch_loaded": "torch" in sys.modules,
    }))
    """
    report = run_without_torch(code)
    assert report["groups"].get("ctapipe_reco") == ["GammaPhysNetReconstructor"]
    assert report["groups"].get("ctapipe_io") == ["AirShowerSimEventSource"]
    assert report["reco"], "GammaPhysNetReconstructor not among ctapipe's reconstructors"
    assert report["reco_module"] == "ctapipe_gammalearn.reco"
    assert report["source"], "AirShowerSimEventSource not among ctapipe's event sources"

    declared = pyproject()["project"]["scripts"]
    assert sorted(report["scripts"]) == sorted(declared), "installed entry points differ from pyproject.toml"
    # the torch-free tools load; the training tools may need torch only once they run
    for name, target in declared.items():
        if not torch_side(target.split(":")[0]):
            assert report["scripts"][name] is True, f"{name}: {report['scripts'][name]}"
    assert not report["torch_loaded"]


def test_base_install_needs_no_torch_and_picks_onnxruntime_per_platform():
    from packaging.requirements import Requirement

    project = pyproject()["project"]
    base = [Requirement(r) for r in project["dependencies"]]
    assert not any(r.name in ("torch", "onnx", "tensorboard") for r in base)
    assert "torch" in [Requirement(r).name for r in project["optional-dependencies"]["train"]]
    runtimes = [r for r in base if r.name.startswith("onnxruntime")]
    platforms = {
        ("linux", "x86_64"): "onnxruntime-gpu",
        ("win32", "AMD64"): "onnxruntime-gpu",
        ("linux", "aarch64"): "onnxruntime",
        ("darwin", "arm64"): "onnxruntime",
        ("darwin", "x86_64"): "onnxruntime",
        ("win32", "ARM64"): "onnxruntime",
    }
    for (system, machine), expected in platforms.items():
        env = {"sys_platform": system, "platform_machine": machine}
        assert [r.name for r in runtimes if r.marker.evaluate(env)] == [expected], (system, machine)
