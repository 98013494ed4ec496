"""γ-PhysNet: outputs, presets, implementations, training signal, export."""

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_lattice import hex_geometry

from ctapipe_gammalearn.lattice import Lattice
from ctapipe_gammalearn.modelcard import INPUT_NAMES, OUTPUT_NAMES, OUTPUTS
from ctapipe_gammalearn.nn import PRESETS, TARGET_SCALE, GammaPhysNet
from ctapipe_gammalearn.nn.flops import count_flops, count_parameters

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def lattice(lst1_subarray):
    return Lattice.from_geometry(lst1_subarray.tel[1].camera.geometry)


@pytest.fixture(scope="module")
def toy_lattice():
    """A 331-pixel hexagonal camera, for the heavier tests."""
    return Lattice.from_geometry(hex_geometry(radius=10, rotation_deg=11))


@pytest.fixture(scope="module")
def small(lattice):
    torch.manual_seed(0)
    return GammaPhysNet(lattice, "small").eval()


def toy_events(n_pixels, batch=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, n_pixels, generator=gen) * 3
    image[:, :60] += torch.rand(batch, 60, generator=gen) * 200  # a bright blob
    peak_time = 15 + 5 * torch.rand(batch, n_pixels, generator=gen)
    return image, peak_time


def test_outputs_shapes_and_units(small, lattice):
    image, peak_time = toy_events(lattice.n_pixels, batch=3)
    outputs = small(image, peak_time)
    assert len(outputs) == len(OUTPUT_NAMES)
    for name, out in zip(OUTPUT_NAMES, outputs):
        expected = tuple(3 if d == "batch" else (2 if d == "n_classes" else d) for d in OUTPUTS[name]["shape"])
        assert tuple(out.shape) == expected, name
        assert out.dtype == torch.float32


def test_nan_and_empty_inputs_give_finite_outputs(small, lattice):
    image, peak_time = toy_events(lattice.n_pixels, batch=4)
    image[0, ::3] = float("nan")
    peak_time[1, ::5] = float("nan")
    image[2] = 0.0  # empty image
    image[3] = float("nan")  # nothing valid at all
    with torch.no_grad():
        outputs = small(image, peak_time)
    for name, out in zip(OUTPUT_NAMES, outputs):
        assert torch.isfinite(out).all(), name
    # a NaN pixel is the same as a missing pixel with zero charge
    clean, t = toy_events(lattice.n_pixels, batch=1)
    with_nan = clean.clone()
    with_nan[0, 100] = float("nan")
    features_nan = small.normalise_inputs(with_nan, t)
    assert features_nan[0, 2, 100] == 0 and features_nan[0, 0, 100] == 0
    assert torch.isfinite(features_nan).all()


def test_input_normalisation(small, lattice):
    image, peak_time = toy_events(lattice.n_pixels, batch=2)
    x = small.normalise_inputs(image, peak_time + 1000.0)
    y = small.normalise_inputs(image, peak_time)
    # peak time enters relative to the event: a global shift changes nothing
    torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)
    assert x[:, 0].max() < 10  # log-scaled charge
    torch.testing.assert_close(x[:, 0], torch.log1p(image))


def test_config_rebuilds_and_overrides(small, lattice):
    rebuilt = GammaPhysNet(lattice, **small.config)
    rebuilt.load_state_dict(small.state_dict())
    rebuilt.eval()
    image, peak_time = toy_events(lattice.n_pixels, batch=2)
    for a, b in zip(small(image, peak_time), rebuilt(image, peak_time)):
        torch.testing.assert_close(a, b)
    custom = GammaPhysNet(lattice, "small", channels=(4, 8), blocks=(1, 2), head_hidden=8)
    assert custom.config["channels"] == [4, 8] and custom.config["preset"] == "small"
    assert GammaPhysNet(lattice, **custom.config).config == custom.config
    with pytest.raises(ValueError, match="preset"):
        GammaPhysNet(lattice, "huge")
    with pytest.raises(ValueError, match="depth"):
        GammaPhysNet(lattice, "small", depth=3)


def test_preset_sizes(lattice):
    assert count_parameters(GammaPhysNet(lattice, "small")) < 500_000
    paper = GammaPhysNet(lattice, "paper")
    assert paper.config["channels"] == [16, 32, 64] and paper.config["blocks"] == [3, 3, 3]
    assert count_parameters(paper) > count_parameters(GammaPhysNet(lattice, "small"))
    assert set(PRESETS) >= {"small", "paper"}


@pytest.mark.parametrize("train", [True, False])
def test_grid_and_gather_models_agree(lattice, train):
    # float64, so the comparison is not drowned in float32 summation-order noise
    torch.manual_seed(3)
    grid = GammaPhysNet(lattice, "small", impl="grid").double()
    gather = GammaPhysNet(lattice, "small", impl="gather").double()
    gather.load_state_dict(grid.state_dict())
    assert grid.on_grid and not gather.on_grid
    image, peak_time = toy_events(lattice.n_pixels, batch=3)
    image[0, 5] = float("nan")
    image, peak_time = image.double(), peak_time.double()
    grid.train(train)
    gather.train(train)
    out_grid = grid(image, peak_time)
    out_gather = gather(image, peak_time)
    for name, a, b in zip(OUTPUT_NAMES, out_grid, out_gather):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=name)
    if train:
        sum(o.sum() for o in out_grid).backward()
        sum(o.sum() for o in out_gather).backward()
        for (name, pa), pb in zip(grid.named_parameters(), gather.parameters()):
            torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-8, atol=1e-10, msg=name)


def test_target_scaling(small):
    assert small.target_scale == TARGET_SCALE
    assert small.target_scale["impact"] == 100.0
    assert small.normalise("impact", 250.0) == pytest.approx(2.5)
    assert small.normalise("impact", math.log(100.0**2), logvar=True) == pytest.approx(0.0)


def test_few_steps_reduce_the_loss(toy_lattice):
    lattice = toy_lattice
    torch.manual_seed(0)
    model = GammaPhysNet(lattice, "small")
    image, peak_time = toy_events(lattice.n_pixels, batch=8, seed=1)
    image[4:, :60] *= 0.1  # two toy classes
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    log10_energy = torch.linspace(-1, 1, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_fn():
        logits, energy, energy_logvar, *_ = model(image, peak_time)
        return F.cross_entropy(logits, labels) + F.mse_loss(model.normalise("log10_energy", energy), log10_energy)

    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("impl", ["grid", "gather"])
def test_onnx_export_dynamic_batch(lattice, impl):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    small = GammaPhysNet(lattice, "small", impl=impl).eval()
    image, peak_time = toy_events(lattice.n_pixels, batch=2)
    buffer = io.BytesIO()
    torch.onnx.export(
        small,
        (image, peak_time),
        buffer,
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        dynamic_axes={name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES},
        opset_version=17,
        dynamo=False,  # the torch.export-based exporter needs onnxscript, not a dependency
    )
    model = onnx.load_from_string(buffer.getvalue())
    assert model.ir_version <= 13  # what onnxruntime 1.31 reads
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        image, peak_time = toy_events(lattice.n_pixels, batch=batch, seed=batch)
        image[0, 7] = float("nan")
        with torch.no_grad():
            expected = small(image, peak_time)
        got = session.run(list(OUTPUT_NAMES), {"image": image.numpy(), "peak_time": peak_time.numpy()})
        for name, a, b in zip(OUTPUT_NAMES, got, expected):
            assert a.shape == tuple(b.shape), name
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_torchscript_script_and_trace(toy_lattice):
    lattice = toy_lattice
    small = GammaPhysNet(lattice, "small").eval()
    image, peak_time = toy_events(lattice.n_pixels, batch=3)
    with torch.no_grad():
        expected = small(image, peak_time)
        scripted = torch.jit.script(small)
        traced = torch.jit.trace(small, (image[:2], peak_time[:2]))
        for module in (scripted, traced):
            for a, b in zip(module(image, peak_time), expected):
                torch.testing.assert_close(a, b)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    torch.testing.assert_close(loaded(image, peak_time)[1], expected[1])


def test_count_flops(lattice):
    small_gather = GammaPhysNet(lattice, "small", impl="gather")
    small_grid = GammaPhysNet(lattice, "small", impl="grid")
    gather = count_flops(small_gather)
    grid = count_flops(small_grid, batch=2)
    assert gather["params"] == grid["params"] == count_parameters(small_gather)
    # the stem alone: 2 x pixels x taps x 3 inputs x C0 outputs
    stem = 2 * lattice.n_pixels * lattice.n_taps * 3 * small_gather.config["channels"][0]
    assert gather["flops"] > stem
    # the grid pays for empty cells and unused taps
    assert grid["flops"] > gather["flops"]
    assert small_gather.training  # mode restored


@pytest.mark.slow
def test_paper_preset_runs_both_ways(lattice):
    torch.manual_seed(0)
    grid = GammaPhysNet(lattice, "paper", impl="grid").eval()
    gather = GammaPhysNet(lattice, "paper", impl="gather").eval()
    gather.load_state_dict(grid.state_dict())
    image, peak_time = toy_events(lattice.n_pixels, batch=2)
    with torch.no_grad():
        for a, b in zip(grid(image, peak_time), gather(image, peak_time)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
