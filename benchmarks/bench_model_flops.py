"""Parameters, FLOPs per image and CPU time of each γ-PhysNet preset on LSTCam.

    python benchmarks/bench_model_flops.py [--batch 64] [--repeat 5] [--threads N]

FLOPs: 2 x multiply-accumulates of convolutions and matmuls (`count_flops`);
"gather" counts real pixels and taps only, "grid" what the grid
implementation executes (whole axial grid, 3x3 kernels). Times per image at
the given batch: torch inference (eval, no grad), onnxruntime inference of the
exported model (CPU provider), torch training step (forward + backward).
"""

import argparse
import io
import warnings

import torch
from _common import lstcam_lattice, median_time

from ctapipe_gammalearn.modelcard import INPUT_NAMES, OUTPUT_NAMES
from ctapipe_gammalearn.nn import PRESETS, GammaPhysNet
from ctapipe_gammalearn.nn.flops import count_flops


def onnx_session(model, image, peak_time, threads):
    import onnxruntime

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter notices
        torch.onnx.export(
            model,
            (image[:1], peak_time[:1]),
            buffer,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES},
            opset_version=17,
            dynamo=False,
        )
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: their defaults)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lattice = lstcam_lattice()
    print(f"LSTCam ({lattice.n_pixels} pixels), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"batch {args.batch}, times in ms per image")
    print(
        f"{'preset':8s} {'impl':7s} {'params':>9s} {'MFLOPs/image':>13s} "
        f"{'torch infer':>12s} {'onnxrt infer':>13s} {'torch train':>12s}"
    )
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
                session = onnx_session(model, image, peak_time, args.threads)
            feed = {"image": image.numpy(), "peak_time": peak_time.numpy()}
            onnx_infer = median_time(lambda: session.run(None, feed), args.repeat)
            model.train()

            def step():
                model.zero_grad()
                sum(out.float().mean() for out in model(image, peak_time)).backward()

            train = median_time(step, args.repeat)
            print(
                f"{preset:8s} {impl:7s} {counts['params']:9d} {counts['flops'] / 1e6:13.1f} "
                f"{1e3 * infer / args.batch:12.2f} {1e3 * onnx_infer / args.batch:13.2f} "
                f"{1e3 * train / args.batch:12.2f}"
            )


if __name__ == "__main__":
    main()
