"""Export to ONNX + TorchScript: card embedded, parity checked, files atomic."""

import json

import numpy as np
import onnx
import pytest
import torch
from tiny_models import TinyNet, lattice_of

from ctapipe_gammalearn import __version__
from ctapipe_gammalearn.lattice import geometry_fingerprint
from ctapipe_gammalearn.modelcard import CARD_KEY, INPUT_NAMES, OUTPUT_NAMES, ModelCard
from ctapipe_gammalearn.nn.export import (
    ONNX_IR_VERSION,
    ExportError,
    example_inputs,
    export_checkpoint,
    export_model,
    output_paths,
)


@pytest.fixture(scope="module")
def geometry(lst1_subarray):
    return lst1_subarray.tel[1].camera.geometry


@pytest.fixture(scope="module")
def exported(geometry, tmp_path_factory):
    stem = tmp_path_factory.mktemp("export") / "lst"
    model = TinyNet(geometry.n_pixels)
    result = export_model(model, lattice_of(geometry), "LST_LST_LSTCam", stem, training={"epochs": 3})
    return model, result


def test_export_writes_both_files_with_card(exported, geometry):
    _, result = exported
    assert result["onnx"].suffix == ".onnx" and result["onnx"].is_file()
    assert result["torchscript"].suffix == ".pt" and result["torchscript"].is_file()
    assert result["max_rel_diff"] <= 1e-4

    proto = onnx.load(result["onnx"])
    assert proto.ir_version <= ONNX_IR_VERSION
    meta = {p.key: p.value for p in proto.metadata_props}
    card = ModelCard.from_json(meta[CARD_KEY])
    assert card.geometry_fingerprint == geometry_fingerprint(geometry)
    assert card.n_pixels == geometry.n_pixels
    assert card.camera_name == geometry.name
    assert card.telescope_type == "LST_LST_LSTCam"
    assert card.package_version == __version__
    assert card.trained and card.training == {"epochs": 3}
    assert [i.name for i in proto.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    # dynamic batch axis
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    extra = {CARD_KEY + ".json": ""}
    torch.jit.load(str(result["torchscript"]), _extra_files=extra)
    assert json.loads(extra[CARD_KEY + ".json"]) == json.loads(card.to_json())


def test_exported_files_reproduce_torch(exported, geometry):
    from ctapipe_gammalearn.runtime import load_model

    model, result = exported
    image, peak_time = example_inputs(geometry.n_pixels, batch=33, seed=5)
    with torch.no_grad():
        expected = model(torch.from_numpy(image), torch.from_numpy(peak_time))
    for path in (result["onnx"], result["torchscript"]):
        got = load_model(path).predict(image, peak_time, batch_size=10)
        for name, ref in zip(OUTPUT_NAMES, expected):
            np.testing.assert_allclose(got[name], ref.numpy(), rtol=1e-4, atol=1e-5)


def test_existing_output_needs_overwrite(exported, geometry):
    model, result = exported
    stem = result["onnx"].with_suffix("")
    before = result["onnx"].read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        export_model(model, lattice_of(geometry), "LST_LST_LSTCam", stem)
    assert result["onnx"].read_bytes() == before


class _NotExportable(TinyNet):
    """Behaves differently in eager torch and in the traced graph."""

    def forward(self, image, peak_time):
        outputs = list(super().forward(image, peak_time))
        if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            outputs[1] = outputs[1] + 1.0
        return tuple(outputs)


def test_parity_failure_removes_outputs(geometry, tmp_path):
    stem = tmp_path / "bad"
    with pytest.raises(ExportError, match="differs from torch"):
        export_model(_NotExportable(geometry.n_pixels), lattice_of(geometry), "LST_LST_LSTCam", stem)
    assert list(tmp_path.iterdir()) == []


def test_output_paths_strip_known_suffix(tmp_path):
    assert output_paths(tmp_path / "m.onnx") == (tmp_path / "m.onnx", tmp_path / "m.pt")
    assert output_paths(tmp_path / "m") == (tmp_path / "m.onnx", tmp_path / "m.pt")


@pytest.fixture(scope="module")
def checkpoint(lst1_subarray, tmp_path_factory):
    """A checkpoint in the format of docs/architecture.md, for an untrained small network."""
    from ctapipe_gammalearn.lattice import Lattice
    from ctapipe_gammalearn.nn import GammaPhysNet
    from ctapipe_gammalearn.training.checkpoint import save_checkpoint

    lattice = Lattice.from_geometry(lst1_subarray.tel[1].camera.geometry)
    torch.manual_seed(3)
    net = GammaPhysNet(lattice, preset="small")
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(
        {
            "model_state": net.state_dict(),
            "model_config": net.config,
            "lattice": lattice.to_dict(),
            "telescope_type": str(lst1_subarray.tel[1]),
            "training": {"epoch": 7, "run": "unit-test"},
            "optimizer_state": {},
        },
        path,
    )
    return path, net


def test_export_tool_from_checkpoint(checkpoint, tmp_path):
    from ctapipe.core import run_tool

    from ctapipe_gammalearn.runtime import load_model
    from ctapipe_gammalearn.tools.export import ExportTool

    path, net = checkpoint
    stem = tmp_path / "lst"
    argv = [f"--checkpoint={path}", f"--output={stem}"]
    assert run_tool(ExportTool(), argv, cwd=tmp_path, raises=False) == 0
    runtime = load_model(stem.with_suffix(".onnx"))
    assert runtime.card.trained
    assert runtime.card.training["epoch"] == 7 and runtime.card.training["checkpoint"] == str(path.resolve())
    assert runtime.card.preset == "small"
    image, peak_time = example_inputs(runtime.card.n_pixels, batch=5, seed=9)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(image), torch.from_numpy(peak_time))
    got = runtime.predict(image, peak_time)
    for name, ref in zip(OUTPUT_NAMES, expected):
        np.testing.assert_allclose(got[name], ref.numpy(), rtol=1e-4, atol=1e-4)

    # a second run does not replace the files without --overwrite
    before = stem.with_suffix(".onnx").stat().st_mtime_ns
    assert run_tool(ExportTool(), argv, cwd=tmp_path, raises=False) != 0
    assert stem.with_suffix(".onnx").stat().st_mtime_ns == before


@pytest.mark.parametrize("problem", ["missing", "not a checkpoint", "incomplete"])
def test_export_tool_bad_checkpoint(problem, tmp_path, capfd):
    from ctapipe.core import run_tool

    from ctapipe_gammalearn.tools.export import ExportTool

    path = tmp_path / "ckpt.pt"
    if problem == "not a checkpoint":
        path.write_bytes(b"\x00" * 64)
    elif problem == "incomplete":
        torch.save({"model_state": {}}, path)
    capfd.readouterr()
    argv = [f"--checkpoint={path}", f"--output={tmp_path / 'out'}"]
    assert run_tool(ExportTool(), argv, cwd=tmp_path, raises=False) != 0
    err = capfd.readouterr().err
    assert "ckpt.pt" in err
    assert not list(tmp_path.glob("out*"))


class _RunsCode:
    """Pickles as a call of os.system: loading it unsafely would run a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _unsafe_checkpoint(checkpoint, tmp_path, kind):
    """A copy of the checkpoint fixture that carries code to run, or numpy arrays as before safe loading."""
    from ctapipe_gammalearn.training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint[0])
    if kind == "code":
        state["training"] = {"note": _RunsCode(tmp_path / "code_ran")}
    else:  # the older format: the lattice pickled with numpy arrays
        state["lattice"] = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state["lattice"].items()}
    path = tmp_path / f"{kind}.pt"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("kind, message", [("code", "refusing to load"), ("old", "older ctapipe_gammalearn version")])
def test_export_tool_refuses_unsafe_checkpoint(kind, message, checkpoint, tmp_path, capfd):
    """Loading never runs code from the file; the error is one line naming the file."""
    from ctapipe.core import run_tool

    from ctapipe_gammalearn.tools.export import ExportTool

    path = _unsafe_checkpoint(checkpoint, tmp_path, kind)
    capfd.readouterr()
    argv = [f"--checkpoint={path}", f"--output={tmp_path / 'out'}"]
    assert run_tool(ExportTool(), argv, cwd=tmp_path, raises=False) != 0
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if "ERROR" in line and "--help" not in line]
    assert len(errors) == 1 and f"{path}: " in errors[0] and message in errors[0], err[-2000:]
    assert "Traceback" not in err
    assert not (tmp_path / "code_ran").exists()
    assert not list(tmp_path.glob("out*"))


def test_upgraded_old_checkpoint_exports(checkpoint, tmp_path):
    """A trusted checkpoint of the older format is rewritten once, then exports like a new one."""
    from ctapipe_gammalearn.training.upgrade import main as upgrade

    path = _unsafe_checkpoint(checkpoint, tmp_path, "old")
    assert upgrade([str(path)]) == 0
    exported = export_checkpoint(path, tmp_path / "upgraded")
    assert exported["max_rel_diff"] <= 1e-4
