"""Exact convolution, normalisation, pooling and attention on camera lattices.

Activations come in two layouts, chosen by the tensor's rank:

- pixel list ``(N, C, n_pixels)``: any lattice;
- axial grid ``(N, C, H, W)`` (``lattice.grid_shape``), empty cells held at
  zero: regular lattices only. A network can stay on the grid across many
  layers and convert only at the ends (`to_grid` / `from_grid`).

Every layer gives the same numbers in both layouts. Index tables are buffers,
so models move between devices and export to ONNX and TorchScript.
"""

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LatticeConv",
    "LatticeBatchNorm",
    "LatticePool",
    "lattice_pool",
    "ChannelAttention",
    "SpatialAttention",
    "DualAttention",
    "to_grid",
    "from_grid",
    "pixel_sum",
]

IMPLS = ("auto", "grid", "gather")


def _long(array):
    return torch.as_tensor(np.asarray(array), dtype=torch.long)


def _padded(table, sentinel):
    """Index table with -1 replaced by a sentinel index."""
    table = np.asarray(table, dtype=np.int64).copy()
    table[table < 0] = sentinel
    return _long(table)


def _rows(x):
    """(N, C, P) -> (N, P + 1, C) with a zero last row: gathering whole
    C-vectors (channels-last) is several times faster than gathering along P."""
    return F.pad(x.transpose(1, 2), (0, 0, 0, 1))


class _PermuteRows(torch.autograd.Function):
    """Row gather whose map is one-to-one (pixels <-> grid cells), so its
    backward is the inverse gather instead of a scatter-add."""

    @staticmethod
    def forward(ctx, rows, index, inverse):
        ctx.save_for_backward(inverse)
        return rows.index_select(1, index)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        # inverse points at the appended zero row where a row was not read
        return F.pad(grad, (0, 0, 0, 1)).index_select(1, inverse), None, None


def _permute_rows(rows, index, inverse):
    if torch.jit.is_scripting():
        return rows.index_select(1, index)
    return _PermuteRows.apply(rows, index, inverse)


def to_grid(x, cell_pixel, grid_shape: tuple[int, int], pixel_cell: Optional[torch.Tensor] = None):
    """(N, C, P) -> (N, C, H, W) in channels-last memory; ``cell_pixel`` maps
    cells to pixels, P (the zero row) for empty cells. With ``pixel_cell``
    ((P + 1,): each pixel's cell, then H * W) the backward is a gather too,
    faster than the default scatter-add."""
    rows = _rows(x)
    if pixel_cell is None:
        grid = rows.index_select(1, cell_pixel)
    else:
        grid = _permute_rows(rows, cell_pixel, pixel_cell)
    return grid.reshape(-1, grid_shape[0], grid_shape[1], x.shape[1]).permute(0, 3, 1, 2)


def _grid_rows(grid):
    """(N, C, H, W) -> (N, H * W, C); a view for channels-last grids."""
    return grid.permute(0, 2, 3, 1).reshape(grid.shape[0], -1, grid.shape[1])


def from_grid(grid, grid_index, cell_pixel: Optional[torch.Tensor] = None):
    """(N, C, H, W) -> (N, C, P). With ``cell_pixel`` (P for empty cells) the
    backward is a gather too."""
    rows = _grid_rows(grid)
    if cell_pixel is None:
        return rows.index_select(1, grid_index).transpose(1, 2)
    return _permute_rows(rows, grid_index, cell_pixel).transpose(1, 2)


def pixel_sum(x):
    """Sum over camera pixels, for both layouts (empty cells are zero)."""
    if x.dim() == 4:
        return x.sum(dim=[2, 3])
    return x.sum(dim=2)


class _LatticeModule(nn.Module):
    """Holds the index tables of one lattice as buffers."""

    def _register_lattice(self, lattice, channels=1):
        self.n_pixels = int(lattice.n_pixels)
        self.grid_shape = (int(lattice.grid_shape[0]), int(lattice.grid_shape[1]))
        self.register_buffer("grid_index", _long(lattice.grid_index), persistent=False)
        self.register_buffer("cell_pixel", _padded(lattice.cell_pixel, lattice.n_pixels), persistent=False)
        pixel_cell = np.append(lattice.grid_index, lattice.n_cells)
        self.register_buffer("pixel_cell", _long(pixel_cell), persistent=False)
        # (1, C, H, W) channels-last, not (1, 1, H, W): broadcasting only over the
        # batch keeps the multiply vectorised on channels-last activations
        cell_mask = (lattice.cell_pixel >= 0).astype(np.float32).reshape(1, 1, *self.grid_shape)
        cell_mask = torch.as_tensor(cell_mask).expand(1, int(channels), *self.grid_shape)
        self.register_buffer(
            "cell_mask", cell_mask.contiguous(memory_format=torch.channels_last), persistent=False
        )


class LatticeConv(_LatticeModule):
    """Radius-1 convolution over a camera lattice (7 taps hex, 9 square).

    One weight ``(out_channels, in_channels, n_taps)`` serves two exact
    implementations: ``grid`` (scatter to the axial grid, ``conv2d`` with the
    taps placed in a 3x3 kernel, gather back; regular lattices) and
    ``gather`` (gather the neighbour table, one matmul; any lattice; missing
    neighbours read zero). ``auto`` picks ``grid`` where the lattice allows.
    On grid input ``(N, C, H, W)`` the layer convolves on the grid directly
    and keeps empty cells at zero.
    """

    def __init__(self, in_channels, out_channels, lattice, impl="auto", bias=True):
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if impl == "grid" and not lattice.regular:
            raise ValueError(f"camera {lattice.camera_name}: grid convolution needs a regular lattice")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.impl = "grid" if impl == "auto" and lattice.regular else ("gather" if impl == "auto" else impl)
        self.use_grid = self.impl == "grid"
        self.n_taps = int(lattice.n_taps)
        self._register_lattice(lattice, self.out_channels)
        # one-hot (taps -> 3x3 kernel positions): places the weight in a conv2d kernel
        placement = np.zeros((self.n_taps, 9), dtype=np.float32)
        placement[np.arange(self.n_taps), np.flatnonzero(lattice.kernel_mask.ravel())] = 1.0
        self.register_buffer("tap_placement", torch.as_tensor(placement), persistent=False)
        self.register_buffer(
            "neighbours", _padded(lattice.neighbours, lattice.n_pixels).flatten(), persistent=False
        )
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels, self.n_taps))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        fan_in = self.in_channels * self.n_taps
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def kernel3x3(self):
        """The weight as a conv2d kernel (out, in, 3, 3), zero outside the taps."""
        return torch.matmul(self.weight, self.tap_placement).reshape(
            self.out_channels, self.in_channels, 3, 3
        )

    def conv_grid(self, grid):
        """(N, C, H, W) -> (N, O, H, W), empty cells zero."""
        out = F.conv2d(grid, self.kernel3x3(), self.bias, padding=1)
        return out.mul_(self.cell_mask)

    def conv_gather(self, x):
        """(N, C, P) -> (N, O, P) by gather + matmul over the neighbour table."""
        # channels-last rows: each gathered row is a contiguous C-vector
        cols = _rows(x).index_select(1, self.neighbours)  # (N, P * K, C)
        cols = cols.reshape(-1, self.n_pixels, self.n_taps * self.in_channels)
        weight = self.weight.permute(2, 1, 0).reshape(self.n_taps * self.in_channels, self.out_channels)
        out = torch.matmul(cols, weight)  # (N, P, O)
        if self.bias is not None:
            out = out + self.bias
        return out.transpose(1, 2)

    def forward(self, x):
        if x.dim() == 4:
            return self.conv_grid(x)
        if self.use_grid:
            grid = to_grid(x, self.cell_pixel, self.grid_shape, self.pixel_cell)
            return from_grid(self.conv_grid(grid), self.grid_index, self.cell_pixel)
        return self.conv_gather(x)

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, n_taps={self.n_taps}, "
            f"n_pixels={self.n_pixels}, impl={self.impl!r}, bias={self.bias is not None}"
        )


class LatticeBatchNorm(_LatticeModule):
    """BatchNorm whose statistics run over camera pixels only.

    Equal to ``BatchNorm1d`` on the pixel list; on the grid (whose empty
    cells must be zero, as every layer here leaves them), empty cells are left
    out of the statistics and stay zero.
    """

    def __init__(self, num_features, lattice, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self._register_lattice(lattice, self.num_features)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        on_grid = x.dim() == 4
        shape = [1, self.num_features] + [1] * (x.dim() - 2)
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            count = x.shape[0] * self.n_pixels
            mean = x.sum(dims) / count
            x = x - mean.reshape(shape)
            if on_grid:
                x = x * self.cell_mask
            var = (x * x).sum(dims) / count
            with torch.no_grad():
                unbiased = var * (count / max(count - 1, 1))
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
            scale = self.weight * torch.rsqrt(var + self.eps)
            shift = self.bias
        else:
            scale = self.weight * torch.rsqrt(self.running_var + self.eps)
            shift = self.bias - self.running_mean * scale
        shift = shift.reshape(shape)
        if on_grid:
            # x is zero on empty cells: masking the small shift keeps them zero
            shift = shift * self.cell_mask
        return x * scale.reshape(shape) + shift

    def extra_repr(self):
        return f"{self.num_features}, n_pixels={self.n_pixels}, eps={self.eps}, momentum={self.momentum}"


class LatticePool(nn.Module):
    """Max or mean over each coarse pixel's neighbourhood (``lattice.pooled()``).

    Pixel list ``(N, C, P_fine)`` -> ``(N, C, P_coarse)``; grid input goes to
    the coarse grid. ``coarse`` is the resulting lattice (about half the
    pixels). `lattice_pool` chains several.
    """

    def __init__(self, lattice, mode="max"):
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode
        fine = lattice
        coarse, table = lattice.pooled()
        self.coarse = coarse
        self.n_fine = int(fine.n_pixels)
        self.n_coarse = int(coarse.n_pixels)
        self.n_taps = int(table.shape[1])
        self.coarse_grid_shape = (int(coarse.grid_shape[0]), int(coarse.grid_shape[1]))
        valid = table >= 0
        # tap-major tables: the reduction runs over the outermost gathered axis (fast)
        self.register_buffer("table", _padded(table, fine.n_pixels).T.flatten(), persistent=False)
        counts = np.maximum(valid.sum(axis=1), 1).astype(np.float32)
        self.register_buffer("counts", torch.as_tensor(counts), persistent=False)
        # grid -> grid: coarse cells read fine cells; empty coarse cells read the sentinel
        n_fine_cells = fine.n_cells
        fine_cells = np.where(valid, np.asarray(fine.grid_index)[np.maximum(table, 0)], n_fine_cells)
        cell_table = np.full((coarse.n_cells, self.n_taps), n_fine_cells, dtype=np.int64)
        cell_table[coarse.grid_index] = fine_cells
        self.register_buffer("cell_table", _long(cell_table).T.flatten(), persistent=False)
        cell_counts = np.ones(coarse.n_cells, dtype=np.float32)
        cell_counts[coarse.grid_index] = counts
        self.register_buffer("cell_counts", torch.as_tensor(cell_counts), persistent=False)
        mask = (coarse.cell_pixel >= 0).astype(np.float32).reshape(1, 1, *coarse.grid_shape)
        self.register_buffer("coarse_mask", torch.as_tensor(mask), persistent=False)

    def _reduce(self, rows, index, counts, n_out: int):
        """rows (N, P, C) -> (N, n_out, C) over the index table."""
        # sentinel row: -inf for max (never chosen), 0 for mean
        fill = float("-inf") if self.mode == "max" else 0.0
        padded = F.pad(rows, (0, 0, 0, 1), value=fill)
        taps = padded.index_select(1, index).reshape(rows.shape[0], self.n_taps, n_out, rows.shape[2])
        if self.mode == "max":
            return _tap_max(taps)
        return taps.sum(dim=1) / counts.unsqueeze(-1)

    def forward(self, x):
        if x.dim() == 4:
            h, w = self.coarse_grid_shape
            out = self._reduce(_grid_rows(x), self.cell_table, self.cell_counts, h * w)
            out = out.reshape(-1, h, w, x.shape[1]).permute(0, 3, 1, 2)
            # empty coarse cells read only the sentinel: back to zero
            return torch.where(self.coarse_mask > 0, out, torch.zeros_like(out))
        return self._reduce(x.transpose(1, 2), self.table, self.counts, self.n_coarse).transpose(1, 2)

    def extra_repr(self):
        return f"{self.n_fine} -> {self.n_coarse} pixels, mode={self.mode!r}, taps={self.n_taps}"


def _tap_max(taps):
    """Max over the taps (dim 1)."""
    if taps.requires_grad:
        # max with indices: its backward is one scatter, amax's several passes
        return taps.max(dim=1)[0]
    # without a backward, amax: 20x faster than max with indices on CPU (and a
    # plain ReduceMax in the exported graph); the same values
    return taps.amax(dim=1)


def lattice_pool(lattice, steps=1, mode="max"):
    """``steps`` chained `LatticePool` (about 1/2 the pixels each), and the
    coarsest lattice. Chained max pools equal one max over the union of the
    neighbourhoods, at a fraction of the gather cost."""
    pools = []
    for _ in range(steps):
        pools.append(LatticePool(lattice, mode))
        lattice = pools[-1].coarse
    return nn.Sequential(*pools), lattice


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: per-channel gates from the pixel mean."""

    def __init__(self, channels, n_pixels, reduction=4):
        super().__init__()
        hidden = max(channels // reduction, 2)
        self.n_pixels = int(n_pixels)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x):
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(pixel_sum(x) / self.n_pixels))))
        gate = gate.unsqueeze(-1)
        if x.dim() == 4:
            gate = gate.unsqueeze(-1)
        return x * gate


class SpatialAttention(nn.Module):
    """Per-pixel gate from a lattice convolution of the channel mean and max."""

    def __init__(self, lattice, impl="auto"):
        super().__init__()
        self.conv = LatticeConv(2, 1, lattice, impl=impl)

    def forward(self, x):
        summary = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(summary))


class DualAttention(nn.Module):
    """Channel then spatial attention, as in GammaLearn's γ-PhysNet."""

    def __init__(self, channels, lattice, reduction=4, impl="auto"):
        super().__init__()
        self.channel = ChannelAttention(channels, lattice.n_pixels, reduction)
        self.spatial = SpatialAttention(lattice, impl=impl)

    def forward(self, x):
        return self.spatial(self.channel(x))
