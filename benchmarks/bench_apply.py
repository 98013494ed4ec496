"""Inference speed on CPU: images/s of each preset vs the FLOP-bound limit, batched vs per event.

    python benchmarks/bench_apply.py [--images 512] [--batch 256] [--repeat 3] [--threads 0]
        [--dl1 FILE.dl1.h5] [--preset small] [--skip-presets] [--skip-end-to-end]
        [--compare-batches 64 512]

The default DL1 file is a small real one (5 array events on 38 telescopes), where
fixed per-file costs dominate; a file with many events shows the steady state, e.g.
``ctapipe-gammalearn-simulate --particle gamma --n-events 400 --energy-min 0.1 --output sim.dl1.h5``.

1. Matmul peak: median GFLOP/s of a float32 2048x2048 ``torch.mm`` (same threads).
2. Per preset (LSTCam lattice): FLOPs per image (`count_flops`), images/s of the
   exported ONNX model through `ctapipe_gammalearn.runtime` in batches (the
   batched tool's inner loop), and with batch 1 (the per-event path's inner loop).
   FLOP bound = peak / FLOPs per image.
3. End to end on a real DL1 file: ctapipe-process with the GammaPhysNetReconstructor
   (event loop) vs ctapipe-apply-gammalearn (batched), telescope events/s.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import lstcam_telescope, median_time

from ctapipe_gammalearn.lattice import Lattice
from ctapipe_gammalearn.nn import PRESETS, GammaPhysNet
from ctapipe_gammalearn.nn.export import example_inputs, export_model
from ctapipe_gammalearn.nn.flops import count_flops
from ctapipe_gammalearn.runtime import load_model

DEFAULT_DL1 = (
    Path(__file__).resolve().parents[2]
    / "shared/data/dl1/gamma__mono_trigger.dl1.h5"
)



def matmul_peak(repeat, n=2048):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    seconds = median_time(lambda: torch.mm(a, b), repeat=max(repeat, 3))
    return 2 * n**3 / seconds


def lstcam():
    return lstcam_telescope()


def bench_presets(args, workdir):
    tel = lstcam()
    lattice = Lattice.from_geometry(tel.camera.geometry)
    image, peak_time = example_inputs(lattice.n_pixels, batch=args.images, seed=0)
    peak = matmul_peak(args.repeat)
    print(f"matmul peak (torch.mm 2048^2 float32): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'preset':8s} {'MFLOP/img':>10s} {'img/s batched':>14s} {'img/s batch=1':>14s} "
          f"{'FLOP bound':>11s} {'fraction':>9s} {'batch/single':>13s}")
    for preset in PRESETS:
        torch.manual_seed(0)
        net = GammaPhysNet(lattice, preset=preset)
        flops = count_flops(net)["flops"]
        stem = workdir / preset
        runtime = load_model(
            export_model(net, lattice, str(tel), stem, overwrite=True)["onnx"],
            n_threads=args.threads or None,
        )
        batched = args.images / median_time(
            lambda: runtime.predict(image, peak_time, batch_size=args.batch), args.repeat
        )
        n_single = min(64, args.images)
        single = n_single / median_time(
            lambda: [runtime.predict(image[i : i + 1], peak_time[i : i + 1]) for i in range(n_single)],
            args.repeat,
        )
        bound = peak / flops
        print(f"{preset:8s} {flops / 1e6:10.1f} {batched:14.1f} {single:14.1f} "
              f"{bound:11.1f} {batched / bound:9.1%} {batched / single:13.2f}")
        if args.compare_batches:
            compare_batches(runtime, image, peak_time, args.compare_batches, args.repeat, preset)


def compare_batches(runtime, image, peak_time, sizes, repeat, preset):
    """Images/s for each batch size, the sizes alternating in every round (same machine load)."""
    rates = {size: [] for size in sizes}
    for _ in range(repeat):
        for size in sizes:
            rates[size].append(len(image) / median_time(lambda: runtime.predict(image, peak_time, size), 1, 0))
    print(f"{preset:8s} img/s by batch size: "
          + ", ".join(f"{size}: {np.median(r):.0f}" for size, r in rates.items()))


def bench_end_to_end(args, workdir):
    from ctapipe.core import run_tool
    from ctapipe.io import TableLoader
    from ctapipe.tools.process import ProcessorTool

    from ctapipe_gammalearn.tools.apply import ApplyGammaPhysNet

    dl1 = Path(args.dl1)
    if not dl1.is_file():
        print(f"no DL1 file at {dl1}: end-to-end comparison skipped")
        return
    with TableLoader(dl1, focal_length_choice="EQUIVALENT") as loader:
        types = {str(t): t for t in loader.subarray.telescope_types}
        n_tel_events = sum(
            len(t) for t in loader.read_telescope_events_by_id(dl1_parameters=False, simulated=False).values()
        )
    models = []
    for i, (name, tel_type) in enumerate(sorted(types.items())):
        lattice = Lattice.from_geometry(tel_type.camera.geometry)
        torch.manual_seed(i)
        net = GammaPhysNet(lattice, preset=args.preset)
        models.append(export_model(net, lattice, name, workdir / f"e2e_{i}", overwrite=True)["onnx"])

    threads = [f"--GammaPhysNetReconstructor.n_threads={args.threads}"] if args.threads else []
    config = Path(__file__).resolve().parents[1] / "ctapipe_gammalearn/resources/gammalearn.yaml"

    def per_event():
        argv = [
            f"--config={config}",
            f"--input={dl1}",
            f"--output={workdir / 'pe.h5'}",
            "--overwrite",
            "--no-progress",
            "--HDF5EventSource.focal_length_choice=EQUIVALENT",
            *threads,
        ]
        argv += [f"--GammaPhysNetReconstructor.model_paths={m}" for m in models]
        assert run_tool(ProcessorTool(), argv, cwd=workdir, raises=True) == 0

    def batched():
        argv = [f"--input={dl1}", f"--output={workdir / 'b.h5'}", "--overwrite", "--no-progress"]
        argv += [f"--n-threads={args.threads}"] if args.threads else []
        argv += [f"--model={m}" for m in models]
        assert run_tool(ApplyGammaPhysNet(), argv, cwd=workdir, raises=True) == 0

    t_event, t_batch = [], []
    for _ in range(args.repeat):  # alternate: both see the same machine load
        t_event.append(median_time(per_event, 1, warmup=0))
        t_batch.append(median_time(batched, 1, warmup=0))
    te, tb = np.median(t_event), np.median(t_batch)
    print(f"\nend to end on {dl1.name} ({n_tel_events} telescope events, preset {args.preset}):")
    print(f"  ctapipe-process (event loop):  {te:6.2f} s  {n_tel_events / te:8.1f} tel events/s")
    print(f"  ctapipe-apply-gammalearn:      {tb:6.2f} s  {n_tel_events / tb:8.1f} tel events/s")
    print(f"  batched / event loop: {te / tb:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: runtime default (all cores)")
    parser.add_argument("--compare-batches", type=int, nargs="+", metavar="N",
                        help="also images/s of the exported model for each of these batch sizes")
    parser.add_argument("--preset", default="small", help="preset for the end-to-end comparison")
    parser.add_argument("--dl1", default=str(DEFAULT_DL1))
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--skip-presets", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_presets:
            bench_presets(args, workdir)
        if not args.skip_end_to_end:
            bench_end_to_end(args, workdir)


if __name__ == "__main__":
    main()
