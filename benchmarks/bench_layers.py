"""Forward+backward time of one lattice convolution on LSTCam.

Compares LatticeConv's grid and gather implementations with two naive
formulations of the same convolution: IndexedConv-style unfold-gather
(``input[..., indices]`` then one matmul) and a per-tap loop. Prints medians
and ratios measured side by side in one run.

    python benchmarks/bench_layers.py [--batch 64] [--channels 16] [--repeat 15] [--threads N]
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from _common import lstcam_lattice, median_time

from ctapipe_gammalearn.nn.layers import LatticeConv, from_grid, to_grid


class UnfoldGatherConv(torch.nn.Module):
    """IndexedConv-1.3.2-style: gather (N, C, K, P) columns, one matmul."""

    def __init__(self, conv: LatticeConv, lattice):
        super().__init__()
        table = np.asarray(lattice.neighbours).T.copy()  # (K, P)
        table[table < 0] = lattice.n_pixels
        self.register_buffer("indices", torch.as_tensor(table))
        self.conv = conv

    def forward(self, x):
        padded = F.pad(x, (0, 1))
        cols = padded[..., self.indices]  # (N, C, K, P)
        n, c, k, p = cols.shape
        weight = self.conv.weight.reshape(self.conv.out_channels, c * k)
        out = torch.matmul(weight, cols.reshape(n, c * k, p))
        return out + self.conv.bias[:, None]


class TapLoopConv(torch.nn.Module):
    """One gather and one channel matmul per tap, summed."""

    def __init__(self, conv: LatticeConv, lattice):
        super().__init__()
        table = np.asarray(lattice.neighbours).copy()
        table[table < 0] = lattice.n_pixels
        self.register_buffer("table", torch.as_tensor(table))
        self.conv = conv

    def forward(self, x):
        padded = F.pad(x, (0, 1))
        out = self.conv.bias[None, :, None]
        for t in range(self.table.shape[1]):
            out = out + torch.einsum("oc,ncp->nop", self.conv.weight[:, :, t], padded[..., self.table[:, t]])
        return out


def time_fwd_bwd(fn, x, repeat, warmup=3):
    def step():
        x.grad = None
        fn(x).square().mean().backward()

    return median_time(step, repeat, warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lattice = lstcam_lattice()
    torch.manual_seed(0)
    c = args.channels
    grid_conv = LatticeConv(c, c, lattice, impl="grid")
    gather_conv = LatticeConv(c, c, lattice, impl="gather")
    gather_conv.load_state_dict(grid_conv.state_dict())
    unfold = UnfoldGatherConv(grid_conv, lattice)
    taploop = TapLoopConv(grid_conv, lattice)

    x = torch.randn(args.batch, c, lattice.n_pixels, requires_grad=True)
    # the layout a network keeps between layers (see GammaPhysNet)
    xg = to_grid(x.detach(), grid_conv.cell_pixel, grid_conv.grid_shape).contiguous(
        memory_format=torch.channels_last
    )
    xg.requires_grad_(True)

    reference = unfold(x)
    for name, out in [
        ("grid", grid_conv(x)),
        ("gather", gather_conv(x)),
        ("tap loop", taploop(x)),
        ("grid-resident", from_grid(grid_conv(xg), grid_conv.grid_index)),
    ]:
        diff = float((out - reference).detach().abs().max())
        assert diff < 1e-4, f"{name} differs from the reference by {diff}"

    cases = [
        ("naive unfold-gather (IndexedConv-style)", unfold, x),
        ("naive per-tap loop", taploop, x),
        ("LatticeConv impl=gather", gather_conv, x),
        ("LatticeConv impl=grid (pixel list in/out)", grid_conv, x),
        ("LatticeConv on grid activations (channels-last)", grid_conv, xg),
    ]
    print(
        f"LSTCam {lattice.n_pixels} pixels, grid {lattice.grid_shape}, batch {args.batch}, "
        f"{c}->{c} channels, forward+backward, median of {args.repeat}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus"
    )
    medians = {}
    # interleave the cases so machine noise hits all of them alike
    for name, fn, inp in cases:
        medians[name] = []
    for _ in range(3):
        for name, fn, inp in cases:
            medians[name].append(time_fwd_bwd(fn, inp, max(args.repeat // 3, 1)))
    base = float(np.median(medians[cases[0][0]]))
    for name, _, _ in cases:
        t = float(np.median(medians[name]))
        print(f"  {name:50s} {1e3 * t:8.1f} ms   speed-up vs naive unfold-gather {base / t:5.2f}x")


if __name__ == "__main__":
    main()
