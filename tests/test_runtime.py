"""Loading exported models for inference: backends, batching, providers, clear errors."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from tiny_models import TinyNet, lattice_of

from ctapipe_gammalearn.modelcard import CARD_KEY, OUTPUT_NAMES
from ctapipe_gammalearn.nn.export import example_inputs, export_model
from ctapipe_gammalearn.runtime import ModelFileError, choose_providers, load_model


@pytest.fixture(scope="module")
def geometry(lst1_subarray):
    return lst1_subarray.tel[1].camera.geometry


@pytest.fixture(scope="module")
def model_files(geometry, tmp_path_factory):
    stem = tmp_path_factory.mktemp("runtime") / "lst"
    return export_model(TinyNet(geometry.n_pixels), lattice_of(geometry), "LST_LST_LSTCam", stem)


def test_predict_shapes_and_batching(model_files, geometry):
    runtime = load_model(model_files["onnx"], n_threads=1)
    assert runtime.backend == "onnxruntime"
    assert runtime.card.n_pixels == geometry.n_pixels
    image, peak_time = example_inputs(geometry.n_pixels, batch=21)
    whole = runtime.predict(image, peak_time, batch_size=64)
    assert list(whole) == list(OUTPUT_NAMES)
    assert whole["class_logits"].shape == (21, 2)
    assert whole["log10_energy"].shape == (21,)
    assert whole["fov_offset"].shape == (21, 2)
    # batch splitting must not change results
    pieces = runtime.predict(image, peak_time, batch_size=4)
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(pieces[name], whole[name], rtol=1e-6, atol=1e-6)
    # rows are independent of each other
    single = runtime.predict(image[5:6], peak_time[5:6])
    np.testing.assert_allclose(single["log10_energy"], whole["log10_energy"][5:6], rtol=1e-5)
    empty = runtime.predict(image[:0], peak_time[:0])
    assert empty["fov_offset"].shape == (0, 2)


def test_default_batch_size_follows_the_device(model_files, geometry, monkeypatch):
    from ctapipe_gammalearn import runtime as runtime_module

    runtime = load_model(model_files["onnx"], n_threads=1)
    assert runtime.default_batch_size == runtime_module.CPU_BATCH_SIZE
    # the default splits into calls of default_batch_size images
    monkeypatch.setattr(runtime_module, "CPU_BATCH_SIZE", 8)
    calls = []
    run = runtime._run
    monkeypatch.setattr(runtime, "_run", lambda image, peak_time: calls.append(len(image)) or run(image, peak_time))
    image, peak_time = example_inputs(geometry.n_pixels, batch=21)
    runtime.predict(image, peak_time)
    assert calls == [8, 8, 5]
    monkeypatch.setattr(runtime, "providers", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.default_batch_size == runtime_module.GPU_BATCH_SIZE


def test_onnx_and_torchscript_agree(model_files, geometry):
    image, peak_time = example_inputs(geometry.n_pixels, batch=6, seed=3)
    onnx_out = load_model(model_files["onnx"]).predict(image, peak_time)
    ts_runtime = load_model(model_files["torchscript"])
    assert ts_runtime.backend == "torchscript"
    assert ts_runtime.card == load_model(model_files["onnx"]).card
    ts_out = ts_runtime.predict(image, peak_time)
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(onnx_out[name], ts_out[name], rtol=1e-4, atol=1e-5)


def test_thread_count_is_applied(model_files):
    runtime = load_model(model_files["onnx"], n_threads=1)
    assert runtime.session.get_session_options().intra_op_num_threads == 1


def test_spinning_is_off_unless_asked(model_files):
    def spinning(runtime):
        options = runtime.session.get_session_options()
        return options.get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(load_model(model_files["onnx"])) == "0"
    assert spinning(load_model(model_files["onnx"], spin_threads=True)) == "1"


def test_wrong_pixel_count_is_rejected(model_files, geometry):
    runtime = load_model(model_files["onnx"])
    image, peak_time = example_inputs(geometry.n_pixels - 1, batch=2)
    with pytest.raises(ValueError, match=f"expects {geometry.n_pixels} pixels"):
        runtime.predict(image, peak_time)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="model file not found") as err:
        load_model(tmp_path / "nope.onnx")
    assert "nope.onnx" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_onnx(model_files, tmp_path, damage):
    data = model_files["onnx"].read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": b"\x00\xff" * 100, "empty": b""}[damage]
    path = tmp_path / f"{damage}.onnx"
    path.write_bytes(damaged)
    with pytest.raises(ModelFileError, match="not a readable ONNX model") as err:
        load_model(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_corrupt_torchscript(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="not a readable TorchScript model"):
        load_model(path)


def _rewrite_card(source, target, value):
    proto = onnx.load(source)
    kept = [p for p in proto.metadata_props if p.key != CARD_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    if value is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = CARD_KEY, value
    onnx.save(proto, target)


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "no model card"),
        ("{not json", "invalid model card"),
        ('{"format_version": "9.0"}', "invalid model card.*not supported"),
        ('{"format_version": "1.0"}', "invalid model card"),
    ],
)
def test_missing_or_invalid_card(model_files, tmp_path, value, message):
    path = tmp_path / "card.onnx"
    _rewrite_card(model_files["onnx"], path, value)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_provider_choice_is_quiet(model_files, capfd):
    import onnxruntime as ort

    providers = choose_providers(model_files["onnx"].read_bytes())
    captured = capfd.readouterr()
    assert providers[-1] == "CPUExecutionProvider"
    assert set(providers) <= set(ort.get_available_providers())
    assert "error" not in (captured.err + captured.out).lower()
    # an explicit preference is honoured where available
    assert choose_providers(b"", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_onnx_inference_without_torch(model_files, geometry):
    code = f"""
import sys
class _NoTorch:  # any import of torch now fails, like on a machine without it
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")
sys.meta_path.insert(0, _NoTorch())
import numpy as np
from ctapipe_gammalearn.runtime import load_model
runtime = load_model({str(model_files["onnx"])!r})
out = runtime.predict(np.ones((3, {geometry.n_pixels}), "f4"), np.full((3, {geometry.n_pixels}), 10, "f4"))
assert np.isfinite(out["log10_energy"]).all()
assert "torch" not in sys.modules
print("ok", out["class_logits"].shape)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ok (3, 2)" in result.stdout
