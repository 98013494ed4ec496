"""Parameters, FLOPs per image and CPU inference time of each γ-PhysNet preset on LSTCam.

    python benchmarks/bench_model_flops.py [--batch 64] [--repeat 5] [--threads N]

FLOPs: 2 x multiply-accumulates of convolutions and matmuls (`count_flops`);
"gather" counts real pixels and taps only, "grid" what the grid
implementation executes (whole axial grid, 3x3 kernels).
"""

import argparse
import time
import warnings

import numpy as np
import torch

from ctapipe_gammalearn.lattice import Lattice
from ctapipe_gammalearn.nn import PRESETS, GammaPhysNet
from ctapipe_gammalearn.nn.flops import count_flops


def lstcam_lattice():
    from ctapipe_io_lst import LSTEventSource

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        geometry = LSTEventSource.create_subarray(tel_id=1).tel[1].camera.geometry
    return Lattice.from_geometry(geometry)


def median_time(fn, repeat, warmup=2):
    times = []
    for i in range(warmup + repeat):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lattice = lstcam_lattice()
    print(f"LSTCam ({lattice.n_pixels} pixels), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'preset':8s} {'impl':7s} {'params':>9s} {'MFLOPs/image':>13s} {'infer ms/image':>15s} {'train ms/image':>15s}")
    torch.manual_seed(0)
    image = torch.rand(args.batch, lattice.n_pixels) * 20
    peak_time = torch.rand(args.batch, lattice.n_pixels) * 10
    for preset in PRESETS:
        for impl in ("grid", "gather"):
            model = GammaPhysNet(lattice, preset, impl=impl)
            counts = count_flops(model)
            model.eval()
            with torch.no_grad():
                infer = median_time(lambda: model(image, peak_time), args.repeat)
            model.train()

            def step():
                model.zero_grad()
                sum(out.float().mean() for out in model(image, peak_time)).backward()

            train = median_time(step, args.repeat)
            print(
                f"{preset:8s} {impl:7s} {counts['params']:9d} {counts['flops'] / 1e6:13.1f} "
                f"{1e3 * infer / args.batch:15.2f} {1e3 * train / args.batch:15.2f}"
            )


if __name__ == "__main__":
    main()
