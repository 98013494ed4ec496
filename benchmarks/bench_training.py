"""Training throughput: data loader vs model step, fraction of the FLOP bound, memory vs dataset size.

    python benchmarks/bench_training.py --dl1 gamma.dl1.h5 proton.dl1.h5 [--presets small paper]

Prints, side by side in one run (medians of ``--repeats``):
- loader images/s (shuffled batches from the memory-mapped cache, float32 tensors)
  and training-step images/s per preset (forward + backward + AdamW, CPU threads
  as configured), and their ratio (goal: loader >= 5x the model);
- the training step as a fraction of the FLOP bound: counted forward FLOPs per
  image x 3 (backward ~ 2x forward) against a float32 matmul peak measured here;
- peak memory while building the cache from 1x, 2x, 4x the inputs (each in a
  fresh process), and the anonymous memory while iterating one epoch over it.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import matmul_peak_gflops


def rss_anon_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def loader_rate(cache, batch_size, repeats):
    from ctapipe_gammalearn.training.stream import BatchStream

    stream = BatchStream(cache, np.arange(len(cache)), batch_size=batch_size, seed=0)
    rates = []
    for epoch in range(repeats):
        stream.set_epoch(epoch)
        start = time.perf_counter()
        n = sum(len(batch["image"]) for batch in stream)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def train_rate(cache, lattice, preset, batch_size, steps, repeats):
    import torch

    from ctapipe_gammalearn.nn.flops import count_flops
    from ctapipe_gammalearn.nn.physnet import GammaPhysNet
    from ctapipe_gammalearn.training.balancing import make_balancer
    from ctapipe_gammalearn.training.losses import TASKS, MultitaskLoss
    from ctapipe_gammalearn.training.setup import make_optimizer
    from ctapipe_gammalearn.training.stream import BatchStream

    torch.manual_seed(0)
    model = GammaPhysNet(lattice, preset=preset)
    flops = count_flops(model)["flops"]
    loss_fn, balancer = MultitaskLoss(), make_balancer("uncertainty", TASKS)
    optimizer = make_optimizer(model, balancer, 1e-3, 1e-4)
    stream = BatchStream(cache, np.arange(len(cache)), batch_size=batch_size, seed=0, drop_last=True)
    batches = []
    for batch in stream:
        batches.append(batch)
        if len(batches) == steps:
            break
    model.train()

    def step(batch):
        losses = loss_fn(model(batch["image"], batch["peak_time"]), batch)
        optimizer.zero_grad()
        balancer(losses).backward()
        optimizer.step()

    step(batches[0])  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        rates.append(len(batches) * batch_size / (time.perf_counter() - start))
    return statistics.median(rates), flops


def build_memory(files, copies, cache_dir):
    """Peak RSS (MB) of a fresh process building the cache of ``files`` listed ``copies`` times."""
    code = f"""
import resource, json
from ctapipe_gammalearn.data import InputFile, build_cache, TrainingQualityQuery
files = {[str(f) for f in files]!r} * {copies}
inputs = [InputFile(f, i % 2) for i, f in enumerate(files)]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cache = build_cache(inputs, {str(cache_dir)!r}, quality_query=TrainingQualityQuery(quality_criteria=[]),
                    chunk_size=200, progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(n_events=len(cache), peak_mb=peak / 1024, import_mb=base / 1024, path=str(cache.path))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def epoch_memory(cache_path, batch_size=64):
    from ctapipe_gammalearn.data import EventCache
    from ctapipe_gammalearn.training.stream import BatchStream

    cache = EventCache(cache_path)
    before = rss_anon_mb()
    peak = before
    for batch in BatchStream(cache, np.arange(len(cache)), batch_size=batch_size, seed=0):
        peak = max(peak, rss_anon_mb())
        del batch
    return peak - before


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dl1", nargs="+", required=True, help="DL1 files with images (one telescope type)")
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()

    import torch

    from ctapipe_gammalearn.data import EventCache
    from ctapipe_gammalearn.data.inputs import read_subarray
    from ctapipe_gammalearn.lattice import Lattice

    if args.threads:
        torch.set_num_threads(args.threads)
    files = [Path(f).resolve() for f in args.dl1]
    with tempfile.TemporaryDirectory() as tmp:
        memory = [build_memory(files, copies, Path(tmp)) for copies in (1, 2, 4)]
        cache = EventCache(memory[0]["path"])
        subarray = read_subarray(files[0])
        geometry = subarray.tel[subarray.get_tel_ids_for_type(cache.telescope_type)[0]].camera.geometry
        lattice = Lattice.from_geometry(geometry)

        peak = matmul_peak_gflops()
        print(f"torch threads: {torch.get_num_threads()}, float32 matmul peak: {peak:.1f} GFLOP/s")
        loader = loader_rate(cache, args.batch_size, args.repeats)
        print(f"loader: {loader:.0f} images/s (batch {args.batch_size}, shuffled, {len(cache)} cached events)")
        print(f"{'preset':>8} {'train img/s':>12} {'loader/train':>13} {'GFLOP/img fwd':>14} {'FLOP-bound frac':>16}")
        for preset in args.presets:
            rate, flops = train_rate(cache, lattice, preset, args.batch_size, args.steps, args.repeats)
            achieved = rate * 3 * flops / 1e9
            print(f"{preset:>8} {rate:12.1f} {loader / rate:13.0f} {flops / 1e9:14.3f} {achieved / peak:16.3f}")

        print(f"{'events':>8} {'build peak RSS MB':>18} {'of which imports':>17} {'epoch anon MB':>14}")
        for m in memory:
            print(f"{m['n_events']:8d} {m['peak_mb']:18.0f} {m['import_mb']:17.0f} {epoch_memory(m['path']):14.1f}")


if __name__ == "__main__":
    main()
