"""Lattice layers: both implementations and both layouts give the same numbers."""

import numpy as np
import pytest
import torch
from test_lattice import hex_geometry, square_geometry

from ctapipe_gammalearn.lattice import Lattice
from ctapipe_gammalearn.nn.layers import (
    DualAttention,
    LatticeBatchNorm,
    LatticeConv,
    LatticePool,
    from_grid,
    lattice_pool,
    to_grid,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def hex_lattice():
    return Lattice.from_geometry(hex_geometry(radius=6, rotation_deg=19))


@pytest.fixture(scope="module")
def square_lattice():
    return Lattice.from_geometry(square_geometry(n=10, rotation_deg=8))


@pytest.fixture(scope="module")
def lst_lattice(lst1_subarray):
    return Lattice.from_geometry(lst1_subarray.tel[1].camera.geometry)


@pytest.fixture(params=["hex", "square"])
def lattice(request, hex_lattice, square_lattice):
    return hex_lattice if request.param == "hex" else square_lattice


def reference_conv(x, weight, bias, neighbours):
    """Direct sum over the neighbour table, float64 numpy."""
    x = x.detach().double().numpy()
    w = weight.detach().double().numpy()
    out = np.zeros((x.shape[0], w.shape[0], x.shape[2]))
    for p, row in enumerate(neighbours):
        for t, q in enumerate(row):
            if q >= 0:
                out[:, :, p] += np.einsum("oc,nc->no", w[:, :, t], x[:, :, q])
    return out + bias.detach().double().numpy()[None, :, None]


def _pair(cls, *args, **kwargs):
    torch.manual_seed(0)
    grid = cls(*args, impl="grid", **kwargs)
    gather = cls(*args, impl="gather", **kwargs)
    gather.load_state_dict(grid.state_dict())
    return grid, gather


def test_conv_matches_direct_sum(lattice):
    grid, gather = _pair(LatticeConv, 3, 4, lattice)
    x = torch.randn(2, 3, lattice.n_pixels)
    expected = reference_conv(x, grid.weight, grid.bias, lattice.neighbours)
    for conv in (grid, gather):
        np.testing.assert_allclose(conv(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_conv_grid_and_gather_gradients_agree(lattice):
    grid, gather = _pair(LatticeConv, 5, 6, lattice)
    x = torch.randn(3, 5, lattice.n_pixels)
    target = torch.randn(3, 6, lattice.n_pixels)
    grads = []
    for conv in (grid, gather):
        xi = x.clone().requires_grad_(True)
        ((conv(xi) - target) ** 2).mean().backward()
        grads.append((xi.grad, conv.weight.grad, conv.bias.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert grid.weight.shape == (6, 5, lattice.n_taps)


def test_conv_on_grid_layout_keeps_empty_cells_zero(lst_lattice):
    conv = LatticeConv(2, 3, lst_lattice)
    assert conv.impl == "grid"
    x = torch.randn(2, 2, lst_lattice.n_pixels)
    grid = to_grid(x, conv.cell_pixel, conv.grid_shape)
    assert grid.shape == (2, 2, 55, 55)
    torch.testing.assert_close(from_grid(grid, conv.grid_index), x)
    out = conv(grid)
    empty = conv.cell_mask[0, 0] == 0
    assert empty.sum() == 55 * 55 - lst_lattice.n_pixels
    assert (out[:, :, empty] == 0).all()
    torch.testing.assert_close(from_grid(out, conv.grid_index), conv(x), rtol=1e-5, atol=1e-6)


def test_missing_neighbours_read_zero(hex_lattice):
    """An edge pixel sees only its existing neighbours: check a pixel with few."""
    conv = LatticeConv(1, 1, hex_lattice, impl="gather", bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.ones(1, 1, hex_lattice.n_pixels)
    out = conv(x)[0, 0].detach().numpy()
    np.testing.assert_array_equal(out, (hex_lattice.neighbours >= 0).sum(axis=1))
    assert out.min() == 4  # a corner of a hexagon-shaped camera: 3 neighbours + itself


def test_irregular_lattice_uses_gather(shared_data):
    from ctapipe.instrument import CameraGeometry

    geometry = CameraGeometry.from_table(shared_data / "camgeom" / "Whipple490.camgeom.fits.gz")
    lattice = Lattice.from_geometry(geometry)
    conv = LatticeConv(2, 2, lattice)
    assert conv.impl == "gather"
    assert conv(torch.randn(1, 2, 490)).shape == (1, 2, 490)
    with pytest.raises(ValueError, match="regular"):
        LatticeConv(2, 2, lattice, impl="grid")


def test_batchnorm_equals_batchnorm1d_in_both_layouts(hex_lattice):
    torch.manual_seed(1)
    norm = LatticeBatchNorm(4, hex_lattice)
    reference = torch.nn.BatchNorm1d(4)
    with torch.no_grad():
        for module in (norm, reference):
            module.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
            module.bias.copy_(torch.tensor([0.1, 0.0, -0.3, 2.0]))
    grid_norm = LatticeBatchNorm(4, hex_lattice)
    grid_norm.load_state_dict(norm.state_dict())
    conv = LatticeConv(4, 4, hex_lattice)
    for _ in range(3):  # training updates the running statistics identically
        x = torch.randn(5, 4, hex_lattice.n_pixels) * 3 + 1
        expected = reference(x)
        torch.testing.assert_close(norm(x), expected, rtol=1e-4, atol=1e-5)
        grid = to_grid(x, conv.cell_pixel, conv.grid_shape)
        out = grid_norm(grid)
        torch.testing.assert_close(from_grid(out, conv.grid_index), expected, rtol=1e-4, atol=1e-5)
        assert (out[:, :, conv.cell_mask[0, 0] == 0] == 0).all()
    for module in (norm, grid_norm):
        torch.testing.assert_close(module.running_mean, reference.running_mean)
        torch.testing.assert_close(module.running_var, reference.running_var, rtol=1e-4, atol=1e-5)
    for module in (norm, reference):
        module.eval()
    x = torch.randn(2, 4, hex_lattice.n_pixels)
    torch.testing.assert_close(norm(x), reference(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_pool_matches_table_and_layouts_agree(lattice, mode):
    pool = LatticePool(lattice, mode)
    coarse, table = lattice.pooled()
    assert pool.coarse is coarse
    x = torch.randn(2, 3, lattice.n_pixels, requires_grad=True)
    out = pool(x)
    assert out.shape == (2, 3, coarse.n_pixels)
    xs = x.detach().numpy()
    for p, row in enumerate(table):
        taps = xs[:, :, row[row >= 0]]
        expected = taps.max(axis=2) if mode == "max" else taps.mean(axis=2)
        np.testing.assert_allclose(out[:, :, p].detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    conv = LatticeConv(3, 3, lattice)
    coarse_conv = LatticeConv(3, 3, coarse)
    xg = to_grid(x, conv.cell_pixel, conv.grid_shape)
    out_grid = pool(xg)
    assert out_grid.shape[2:] == tuple(coarse.grid_shape)
    assert (out_grid[:, :, coarse_conv.cell_mask[0, 0] == 0] == 0).all()
    torch.testing.assert_close(from_grid(out_grid, coarse_conv.grid_index), out)
    # gradients agree too
    (g_list,) = torch.autograd.grad(out.square().sum(), x)
    (g_grid,) = torch.autograd.grad(from_grid(out_grid, coarse_conv.grid_index).square().sum(), x)
    torch.testing.assert_close(g_list, g_grid)
    # without gradients (validation, export) max takes another path: the same values
    with torch.no_grad():
        torch.testing.assert_close(pool(x), out, rtol=0, atol=0)
        torch.testing.assert_close(pool(xg), out_grid, rtol=0, atol=0)


def test_chained_pools(lst_lattice):
    pools, coarse = lattice_pool(lst_lattice, steps=2)
    assert len(pools) == 2
    assert 0.2 < coarse.n_pixels / lst_lattice.n_pixels < 0.3
    assert pools(torch.randn(1, 2, lst_lattice.n_pixels)).shape == (1, 2, coarse.n_pixels)


def test_dual_attention_layouts_agree(hex_lattice):
    torch.manual_seed(0)
    attention = DualAttention(8, hex_lattice, impl="grid")
    x = torch.relu(torch.randn(2, 8, hex_lattice.n_pixels))
    conv = attention.spatial.conv
    grid_out = attention(to_grid(x, conv.cell_pixel, conv.grid_shape))
    torch.testing.assert_close(from_grid(grid_out, conv.grid_index), attention(x), rtol=1e-5, atol=1e-6)
    assert (grid_out[:, :, conv.cell_mask[0, 0] == 0] == 0).all()
    gather = DualAttention(8, hex_lattice, impl="gather")
    gather.load_state_dict(attention.state_dict())
    torch.testing.assert_close(gather(x), attention(x), rtol=1e-5, atol=1e-6)


def test_index_tables_are_buffers(hex_lattice):
    conv = LatticeConv(2, 2, hex_lattice)
    buffers = dict(conv.named_buffers())
    assert {"neighbours", "grid_index", "cell_pixel", "cell_mask"} <= set(buffers)
    # tables follow dtype/device moves but do not bloat checkpoints
    assert set(conv.state_dict()) == {"weight", "bias"}
    double = conv.to(torch.float64)
    assert double.cell_mask.dtype == torch.float64 and double.neighbours.dtype == torch.long
    assert double(torch.randn(1, 2, hex_lattice.n_pixels, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("impl", ["grid", "gather"])
def test_conv_scripts_and_traces(hex_lattice, impl):
    conv = LatticeConv(2, 3, hex_lattice, impl=impl)
    x = torch.randn(4, 2, hex_lattice.n_pixels)
    torch.testing.assert_close(torch.jit.script(conv)(x), conv(x))
    traced = torch.jit.trace(conv, x[:2])
    torch.testing.assert_close(traced(x), conv(x))  # batch size is not baked in


def test_bad_arguments(hex_lattice):
    with pytest.raises(ValueError, match="impl"):
        LatticeConv(1, 1, hex_lattice, impl="fast")
    with pytest.raises(ValueError, match="mode"):
        LatticePool(hex_lattice, "median")


@pytest.mark.parametrize("impl", ["grid", "gather"])
def test_conv_exports_to_onnx(hex_lattice, impl):
    import io

    ort = pytest.importorskip("onnxruntime")
    conv = LatticeConv(2, 3, hex_lattice, impl=impl)
    buffer = io.BytesIO()
    torch.onnx.export(
        conv,
        (torch.randn(2, 2, hex_lattice.n_pixels),),
        buffer,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 2, hex_lattice.n_pixels)
    (y,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(y, conv(x).detach().numpy(), rtol=1e-5, atol=1e-6)
