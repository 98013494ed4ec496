"""Lattice max pooling without gradients: ``amax`` against max with indices, side by side.

    python benchmarks/bench_pool_max.py [--batch 64] [--repeat 5] [--threads 1]

`LatticePool` takes the max over each coarse pixel's taps. With gradients it keeps
``max(dim)`` (its indices make the backward one scatter); without (validation, the
exported model) it takes ``amax``. Printed, for each preset on the LSTCam lattice,
alternating the two paths in one run: the median forward time of a batch in eval mode
(PyTorch, as validation runs it) and through onnxruntime (the model exported with each
path, as the apply tools run it), and whether both paths give the same outputs.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import lstcam_lattice, median_time

from ctapipe_gammalearn.nn import PRESETS, GammaPhysNet, layers
from ctapipe_gammalearn.nn.export import example_inputs, export_model
from ctapipe_gammalearn.runtime import load_model

TAP_MAX = layers._tap_max  # amax without gradients
# the path used with gradients, forced
PATHS = {"max with indices": lambda taps: taps.max(dim=1)[0], "amax": TAP_MAX}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lattice = lstcam_lattice()
    image, peak_time = example_inputs(lattice.n_pixels, batch=args.batch, seed=0)
    print(f"batch {args.batch}, {args.threads} thread(s), median of {args.repeat} alternating rounds")
    print(f"{'preset':8s} {'path':18s} {'torch eval ms':>14s} {'onnxruntime ms':>15s}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in PRESETS:
            torch.manual_seed(0)
            net = GammaPhysNet(lattice, preset=preset).eval()
            models, outputs = {}, {}
            for name, reduce in PATHS.items():
                layers._tap_max = reduce
                paths = export_model(net, lattice, "LST", Path(tmp) / f"{preset}_{len(models)}", overwrite=True)
                models[name] = load_model(paths["onnx"], n_threads=args.threads)
            layers._tap_max = TAP_MAX
            x, t = torch.as_tensor(image), torch.as_tensor(peak_time)
            times = {name: ([], []) for name in PATHS}
            for _ in range(args.repeat):
                for name, reduce in PATHS.items():
                    layers._tap_max = reduce
                    with torch.no_grad():
                        times[name][0].append(median_time(lambda: net(x, t), 1, warmup=1))
                        outputs[name] = [o.numpy() for o in net(x, t)]
                    times[name][1].append(median_time(lambda: models[name].predict(image, peak_time), 1, warmup=1))
            layers._tap_max = TAP_MAX
            for name in PATHS:
                eval_ms, ort_ms = (1e3 * np.median(v) for v in times[name])
                print(f"{preset:8s} {name:18s} {eval_ms:14.1f} {ort_ms:15.1f}")
            same = all(np.array_equal(a, b) for a, b in zip(*outputs.values()))
            ratio = [np.median(times["max with indices"][i]) / np.median(times["amax"][i]) for i in (0, 1)]
            print(
                f"{preset:8s} speed-up of amax: torch eval {ratio[0]:.2f}x, onnxruntime {ratio[1]:.2f}x; "
                f"outputs identical: {same}"
            )


if __name__ == "__main__":
    main()
