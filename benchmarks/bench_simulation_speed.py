"""Speed of ctapipe-gammalearn-simulate for LST-1: triggered events per second.

Measured side by side in one run (medians of --repeat runs):
  generate  AirShowerSimEventSource alone (physics, detector, trigger)
  ctapipe   ImageProcessor + ShowerProcessor + DataWriter on the same events (the floor)
  total     both, i.e. what the tool does end to end in one process
  parallel  what the tool does with --workers N: batches simulated and processed in N forked
            processes, written by this one (wall clock only: the work is in the children)
  end to end / ctapipe
            'parallel' over 'ctapipe' (both wall clock): the share of ctapipe's own processing-and-
            writing rate the tool reaches (1 would mean the simulator cost nothing)

Settings: 'benchmark' (the documented samples), 'quickstart' (the training sets of
scripts/demo.sh), 'prod5' (prod5-like diffuse protons).

    python benchmarks/bench_simulation_speed.py [--settings benchmark|quickstart|prod5] [--particles gamma proton]
        [--n-events 300] [--repeat 3] [--workers 2] [--true-image both|yes|no] [--concurrency]

--concurrency adds, per sample, the rate of one process simulating and processing batches alone
against that of each of --workers processes doing the same at once: what the machine's cores
give to parallel work at all (shared caches, memory bandwidth, SMT siblings), whatever the tool.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from ctapipe.image import ImageProcessor
from ctapipe.io import DataWriter
from ctapipe.reco import ShowerProcessor

from ctapipe_gammalearn.simulation import AirShowerSimEventSource
from ctapipe_gammalearn.simulation.parallel import ParallelSimulation, available_cores

SETTINGS = {
    # the documented benchmark samples
    "benchmark": {
        "gamma": dict(particle="gamma", wobble=0.4, energy_min=0.02, energy_max=20.0, core_max=500.0, zenith=20.0),
        "proton": dict(
            particle="proton", viewcone_max=3.0, energy_min=0.05, energy_max=50.0, core_max=800.0, zenith=20.0
        ),
    },
    # the quickstart's training sets (scripts/demo.sh)
    "quickstart": {
        "gamma": dict(
            particle="gamma", viewcone_max=2.5, energy_min=0.01, energy_max=100.0, core_max=500.0,
            spectral_index=-2.0, zenith=20.0,
        ),
        "proton": dict(
            particle="proton", viewcone_max=8.0, energy_min=0.02, energy_max=200.0, core_max=700.0,
            spectral_index=-2.0, zenith=20.0,
        ),
    },
    # prod5-like diffuse protons
    "prod5": {
        "proton": dict(
            particle="proton", viewcone_max=10.0, energy_min=0.01, energy_max=500.0, core_max=1500.0,
            spectral_index=-2.0, zenith=20.0,
        ),
    },
}


def ctapipe_processing(subarray):
    """``process(event)``: what the tool runs on each event, ctapipe's ImageProcessor and ShowerProcessor."""
    process_images = ImageProcessor(subarray=subarray)
    process_shower = ShowerProcessor(subarray=subarray)

    def process(event):
        process_images(event)
        process_shower(event)

    return process


def measure(settings, n_events, seed, workdir, write_true_image=True):
    source = AirShowerSimEventSource(n_events=n_events, seed=seed, write_true_image=write_true_image, **settings)
    start, cpu = time.perf_counter(), time.process_time()
    events = list(source)
    generate, generate_cpu = time.perf_counter() - start, time.process_time() - cpu

    process = ctapipe_processing(source.subarray)
    start, cpu = time.perf_counter(), time.process_time()
    with DataWriter(
        source, output_path=Path(workdir) / f"bench_{seed}.h5", overwrite=True,
        write_dl1_images=True, write_dl1_parameters=True, write_dl2=True,
    ) as writer:
        for event in events:
            process(event)
            writer(event)
    ctapipe, ctapipe_cpu = time.perf_counter() - start, time.process_time() - cpu
    return dict(
        generate=generate, ctapipe=ctapipe, generate_cpu=generate_cpu, ctapipe_cpu=ctapipe_cpu, thrown=source.n_thrown
    )


def measure_parallel(settings, n_events, seed, workdir, n_workers, write_true_image=True):
    """Wall-clock seconds of the tool's loop with ``n_workers`` processes."""
    source = AirShowerSimEventSource(n_events=n_events, seed=seed, write_true_image=write_true_image, **settings)
    process = ctapipe_processing(source.subarray)
    start = time.perf_counter()
    with DataWriter(
        source, output_path=Path(workdir) / f"bench_parallel_{seed}.h5", overwrite=True,
        write_dl1_images=True, write_dl1_parameters=True, write_dl2=True,
    ) as writer, ParallelSimulation(source, process, n_workers) as events:
        for event in events:
            writer(event)
    return time.perf_counter() - start


def measure_concurrency(settings, n_batches, n_workers):
    """Triggered events/s of one process running batches alone, then of each of ``n_workers``
    forked processes running as many batches at the same time."""
    import os

    from threadpoolctl import threadpool_limits

    from ctapipe_gammalearn.simulation.parallel import process_batch

    source = AirShowerSimEventSource(n_events=1, seed=0, **settings)
    process = ctapipe_processing(source.subarray)

    def rate(first):
        start, n = time.perf_counter(), 0
        for index in range(first, first + n_batches):
            n += len(process_batch(source, process, index).events)
        return n / (time.perf_counter() - start)

    with threadpool_limits(1):
        process_batch(source, process, 10_000)  # warm-up: numba caches, lookup tables
        alone = rate(0)
        pipes = []
        for k in range(n_workers):
            read, write = os.pipe()
            if os.fork() == 0:  # pragma: no cover - child
                os.close(read)
                os.write(write, f"{rate(1000 * (k + 1)):.6f}".encode())
                os._exit(0)
            os.close(write)
            pipes.append(read)
        together = []
        for read in pipes:
            with os.fdopen(read) as f:
                together.append(float(f.read()))
        for _ in pipes:
            os.wait()
    return alone, together


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-events", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="runs per table row (0: no table)")
    parser.add_argument("--workers", type=int, default=available_cores(), help="processes of the parallel column")
    parser.add_argument("--settings", choices=list(SETTINGS), default="benchmark", help="which samples")
    parser.add_argument("--particles", nargs="+", default=None, help="of the settings' samples (default: all)")
    parser.add_argument("--true-image", choices=["both", "yes", "no"], default="both",
                        help="rows with the true images written, without, or both")
    parser.add_argument("--concurrency", action="store_true",
                        help="also: one process alone against --workers processes at once")
    parser.add_argument("--concurrency-batches", type=int, default=8, help="batches per process for --concurrency")
    args = parser.parse_args()
    samples = {k: v for k, v in SETTINGS[args.settings].items() if args.particles is None or k in args.particles}
    print(
        f"LST-1, settings '{args.settings}', {args.n_events} triggered events per run, median of {args.repeat} runs\n"
    )
    print("Rates in triggered events per second of wall-clock time, and [per second of this process's CPU time,")
    print("which a shared, loaded machine disturbs much less]. 'end to end / ctapipe': the rate with the")
    print("workers over ctapipe's own processing-and-writing rate, both wall clock.\n")
    print(
        f"| sample | thrown/triggered | generate | ctapipe processing + writing | end to end, one process "
        f"| end to end, {args.workers} workers | speed-up | end to end / ctapipe |"
    )
    print("|---|---|---|---|---|---|---|---|")
    # --repeat 0: no table (e.g. with --concurrency alone)
    true_images = {"both": (True, False), "yes": (True,), "no": (False,)}[args.true_image] if args.repeat else ()
    with tempfile.TemporaryDirectory() as workdir:
        for name, settings in samples.items():
            for true_image in true_images:
                runs, parallel = [], []
                for seed in range(args.repeat):  # interleaved, so both see the same load
                    runs.append(measure(settings, args.n_events, seed, workdir, true_image))
                    parallel.append(measure_parallel(settings, args.n_events, seed, workdir, args.workers, true_image))
                rate = {}
                for key in ("", "_cpu"):
                    gen = np.median([r[f"generate{key}"] for r in runs])
                    ctp = np.median([r[f"ctapipe{key}"] for r in runs])
                    tot = np.median([r[f"generate{key}"] + r[f"ctapipe{key}"] for r in runs])
                    rate[key] = [args.n_events / v for v in (gen, ctp, tot)]
                thrown = np.median([r["thrown"] for r in runs]) / args.n_events
                label = f"{name}{'' if true_image else ' (no true image)'}"
                cells = " | ".join(f"{w:.0f} [{c:.0f}]" for w, c in zip(rate[""], rate["_cpu"]))
                in_parallel = args.n_events / np.median(parallel)
                print(
                    f"| {label} | {thrown:.1f} | {cells} | {in_parallel:.0f} | {in_parallel / rate[''][2]:.2f}× "
                    f"| {in_parallel / rate[''][1]:.2f} |",
                    flush=True,
                )


    if args.concurrency:
        print(f"\nOne process alone against {args.workers} at once ({args.concurrency_batches} batches each, "
              "simulated and processed, triggered events/s):")
        for name, settings in samples.items():
            alone, together = measure_concurrency(settings, args.concurrency_batches, args.workers)
            print(
                f"  {name}: alone {alone:.0f}; together " + " + ".join(f"{r:.0f}" for r in together)
                + f" = {sum(together):.0f} ({sum(together) / alone:.2f}x one process)",
                flush=True,
            )


if __name__ == "__main__":
    main()
