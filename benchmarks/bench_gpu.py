"""γ-PhysNet on a GPU: training and inference images/s against the peak measured in the same run.

    python benchmarks/bench_gpu.py                      # on the GPU (about 5 minutes on an H200)
    python benchmarks/bench_gpu.py --device cpu --tiny  # the same code on CPU at a tiny size (tests)

Prints, side by side in one run (medians of ``--repeats`` timings of ``--steps`` steps):
- the fp32 and bf16 matmul peaks (GFLOP/s) of this device;
- training images/s (forward + backward + AdamW, multitask loss) per preset, for fp32 and
  bf16 autocast, with and without ``torch.compile``, and as a fraction of the bf16 peak
  (forward FLOPs x 3 per image);
- inference images/s of the exported model (random weights: speed does not depend on them)
  through onnxruntime (CUDA provider on a GPU) and TorchScript, at batch 1 and a large batch.

Every figure also goes to ``--json`` for docs/performance.md. Images are LSTCam-shaped
(1855 pixels, real geometry), with a bright blob and noise (`nn.export.example_inputs`).
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import lstcam_lattice, lstcam_telescope  # noqa: E402

GOALS = {"train_paper": 20_000, "infer_paper": 200_000}


def synchronize(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def median_rate(fn, n_items, repeats, device, warmup=1):
    """Median items/s of ``fn()`` (which handles ``n_items``) over ``repeats`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        rates.append(n_items / (time.perf_counter() - start))
    return statistics.median(rates)


def matmul_peak(device, dtype, n, repeats):
    """GFLOP/s of an n x n matmul."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    calls = 10
    rate = median_rate(lambda: [a @ b for _ in range(calls)], calls, repeats, device)
    return rate * 2 * n**3 / 1e9


def synthetic_batch(lattice, batch_size, device, seed=0):
    """A labelled batch in the trainer's format, images from `example_inputs`."""
    import torch

    from ctapipe_gammalearn.nn.export import example_inputs

    image, peak_time = example_inputs(lattice.n_pixels, batch=batch_size, seed=seed)
    rng = np.random.default_rng(seed)
    as_tensor = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    return {
        "image": as_tensor(image),
        "peak_time": as_tensor(peak_time),
        "particle": as_tensor(rng.integers(0, 2, batch_size)).long(),
        "log10_energy": as_tensor(rng.uniform(-1.5, 1.5, batch_size).astype(np.float32)),
        "fov_offset": as_tensor(rng.normal(0.0, 1.0, (batch_size, 2)).astype(np.float32)),
        "impact": as_tensor(rng.normal(0.0, 100.0, (batch_size, 2)).astype(np.float32)),
        "weight": as_tensor(np.ones(batch_size, dtype=np.float32)),
    }


def train_rate(lattice, preset, batch_size, steps, repeats, device, bf16, compile_model):
    """Training images/s and forward FLOPs per image."""
    import torch

    from ctapipe_gammalearn.nn.flops import count_flops
    from ctapipe_gammalearn.nn.physnet import GammaPhysNet
    from ctapipe_gammalearn.training.balancing import make_balancer
    from ctapipe_gammalearn.training.losses import TASKS, MultitaskLoss

    torch.manual_seed(0)
    model = GammaPhysNet(lattice, preset=preset).to(device)
    flops = count_flops(model)["flops"]
    loss_fn, balancer = MultitaskLoss(), make_balancer("uncertainty", TASKS).to(device)
    optimizer = torch.optim.AdamW([*model.parameters(), *balancer.parameters()], lr=1e-3)
    net = torch.compile(model) if compile_model else model
    batch = synthetic_batch(lattice, batch_size, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    model.train()

    def run_steps():
        for _ in range(steps):
            with autocast:
                outputs = net(batch["image"], batch["peak_time"])
                losses = loss_fn(outputs, batch, model.direction_terms)
            optimizer.zero_grad(set_to_none=True)
            balancer(losses).backward()
            optimizer.step()

    return median_rate(run_steps, steps * batch_size, repeats, device), flops


def export_random(lattice, preset, workdir):
    import torch

    from ctapipe_gammalearn.nn.export import export_model
    from ctapipe_gammalearn.nn.physnet import GammaPhysNet

    torch.manual_seed(0)
    model = GammaPhysNet(lattice, preset=preset).eval()
    return export_model(model, lattice, str(lstcam_telescope()), Path(workdir) / preset)


def onnx_rate(path, lattice, batch_size, repeats, device):
    """onnxruntime images/s (CUDA provider on a GPU) and the provider that ran."""
    import onnxruntime as ort

    from ctapipe_gammalearn.nn.export import example_inputs

    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]
    providers = [p for p in wanted if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(path), providers=providers)
    image, peak_time = example_inputs(lattice.n_pixels, batch=batch_size)
    if device.type == "cuda" and session.get_providers()[0] == "CUDAExecutionProvider":
        # inputs and outputs stay on the GPU, as a serving loop would keep them
        binding = session.io_binding()
        for name, array in (("image", image), ("peak_time", peak_time)):
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        for output in session.get_outputs():
            binding.bind_output(output.name, "cuda")
        run = lambda: session.run_with_iobinding(binding)  # noqa: E731
    else:
        run = lambda: session.run(None, {"image": image, "peak_time": peak_time})  # noqa: E731
    calls = max(1, 256 // batch_size)
    rate = median_rate(lambda: [run() for _ in range(calls)], calls * batch_size, repeats, device)
    return rate, session.get_providers()[0]


def torchscript_rate(path, lattice, batch_size, repeats, device, bf16=False):
    import torch

    from ctapipe_gammalearn.nn.export import example_inputs

    module = torch.jit.load(str(path), map_location=device).eval()
    image, peak_time = (torch.as_tensor(a, device=device) for a in example_inputs(lattice.n_pixels, batch=batch_size))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def run():
        with torch.inference_mode(), autocast:
            module(image, peak_time)

    calls = max(1, 256 // batch_size)
    return median_rate(lambda: [run() for _ in range(calls)], calls * batch_size, repeats, device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, no torch.compile (for the test suite)")
    parser.add_argument("--presets", nargs="+", default=None, help="default: small paper (tiny: small)")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (default 256; tiny 4)")
    parser.add_argument("--infer-batch", type=int, default=None, help="large inference batch (default 1024; tiny 8)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per timing (default 20; tiny 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timings per figure (default 5; tiny 1)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)

    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: use --device cpu")
    tiny = args.tiny
    presets = args.presets or (["small"] if tiny else ["small", "paper"])
    batch_size = args.batch_size or (4 if tiny else 256)
    infer_batch = args.infer_batch or (8 if tiny else 1024)
    steps = args.steps or (1 if tiny else 20)
    repeats = args.repeats or (1 if tiny else 5)
    compile_choices = [False] if (tiny or args.no_compile) else [False, True]

    lattice = lstcam_lattice()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    n = 512 if tiny else 8192
    peaks = {
        "fp32": matmul_peak(device, torch.float32, n, repeats),
        "bf16": matmul_peak(device, torch.bfloat16, n, repeats),
    }
    print(f"matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s (n={n})")
    figures = {"device": name, "peak_gflops": peaks, "train": [], "infer": []}

    print("\ntraining (images/s, batch %d)" % batch_size)
    print(f"{'preset':8} {'precision':9} {'compile':7} {'images/s':>10} {'of bf16 peak':>12}")
    for preset in presets:
        for bf16 in (False, True):
            for compile_model in compile_choices:
                rate, flops = train_rate(lattice, preset, batch_size, steps, repeats, device, bf16, compile_model)
                fraction = rate * 3 * flops / (peaks["bf16"] * 1e9)
                precision = "bf16" if bf16 else "fp32"
                row = dict(preset=preset, precision=precision, compile=compile_model, images_per_s=rate,
                           gflop_per_image=flops / 1e9, fraction_of_bf16_peak=fraction)
                figures["train"].append(row)
                print(f"{preset:8} {precision:9} {str(compile_model):7} {rate:10.0f} {fraction:12.2%}")

    print("\ninference of the exported model (images/s)")
    print(f"{'preset':8} {'runtime':24} {'batch':>6} {'images/s':>10} {'of bf16 peak':>12}")
    with tempfile.TemporaryDirectory() as workdir:
        for preset in presets:
            paths = export_random(lattice, preset, workdir)
            flops = next(r["gflop_per_image"] for r in figures["train"] if r["preset"] == preset) * 1e9
            for batch in (1, infer_batch):
                rate, provider = onnx_rate(paths["onnx"], lattice, batch, repeats, device)
                rows = [(f"onnxruntime {provider.replace('ExecutionProvider', '')}", rate)]
                rows.append((f"torchscript {device.type}", torchscript_rate(paths["torchscript"], lattice, batch,
                                                                           repeats, device)))
                if device.type == "cuda":
                    rows.append(("torchscript cuda bf16", torchscript_rate(paths["torchscript"], lattice, batch,
                                                                          repeats, device, bf16=True)))
                for runtime, value in rows:
                    fraction = value * flops / (peaks["bf16"] * 1e9)
                    figures["infer"].append(dict(preset=preset, runtime=runtime, batch=batch, images_per_s=value,
                                                 fraction_of_bf16_peak=fraction))
                    print(f"{preset:8} {runtime:24} {batch:6d} {value:10.0f} {fraction:12.2%}")

    train_paper = max((r["images_per_s"] for r in figures["train"] if r["preset"] == "paper"), default=None)
    infer_paper = max((r["images_per_s"] for r in figures["infer"] if r["preset"] == "paper"
                       and r["batch"] == infer_batch), default=None)
    print("\ngoals (paper):")
    for key, value in (("train_paper", train_paper), ("infer_paper", infer_paper)):
        if value is not None:
            status = "met" if value >= GOALS[key] else "not met"
            print(f"  {key}: {value:.0f} images/s against >= {GOALS[key]} ({status})")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
