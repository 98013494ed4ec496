"""Cost of the GammaPhysNetReconstructor inside ctapipe-process, per event.

    python benchmarks/bench_process_overhead.py [--input FILE.simtel.zst] [--max-events 30]
        [--passes 10] [--preset small] [--repeat 3] [--threads 0]

Two figures, Hillas only against Hillas + GammaPhysNetReconstructor (untrained networks, one
per camera), each measured side by side:

- whole run: ctapipe-process on the same sim_telarray events, both configurations
  alternating, median wall time per event of --repeat runs (start-up and model loading
  included, which weigh a lot on a 30-event file);
- per event: the steps of ctapipe-process's event loop in this process, on the same events
  read once: reading, calibration and image processing (common to both), then per event
  the ShowerProcessor and DataWriter of each configuration, alternating, on copies of the
  event, --passes times over the events. Median per event, start-up excluded.
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import yaml

DEFAULT_INPUT = (
    Path(__file__).resolve().parents[2]
    / "shared/data/simtel/muon/lst_muons.simtel.zst"
)
CONFIG = Path(__file__).resolve().parents[1] / "ctapipe_gammalearn/resources/gammalearn.yaml"


def export_models(path, preset, workdir):
    import torch
    from ctapipe.io import EventSource

    from ctapipe_gammalearn.lattice import Lattice
    from ctapipe_gammalearn.nn import GammaPhysNet
    from ctapipe_gammalearn.nn.export import export_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with EventSource(path, focal_length_choice="EQUIVALENT", max_events=1) as source:
            types = {str(t): t for t in source.subarray.telescope_types}
    models = []
    for i, (name, tel_type) in enumerate(sorted(types.items())):
        lattice = Lattice.from_geometry(tel_type.camera.geometry)
        torch.manual_seed(i)
        net = GammaPhysNet(lattice, preset=preset)
        models.append(export_model(net, lattice, name, workdir / f"m{i}", overwrite=True)["onnx"])
    return models


def count_events(path):
    import tables

    with tables.open_file(path) as h5:
        return len(h5.root.dl1.event.subarray.trigger)


def run(argv, workdir):
    from ctapipe.core import run_tool
    from ctapipe.tools.process import ProcessorTool

    start = time.perf_counter()
    run_tool(ProcessorTool(), argv, cwd=workdir, raises=True)
    return time.perf_counter() - start


def per_event_costs(input_path, models, threads, max_events, passes, spin_threads=False):
    """Median ms per event of the common steps and of each configuration's shower + write."""
    import copy

    from ctapipe.calib import CameraCalibrator
    from ctapipe.image import ImageProcessor
    from ctapipe.io import DataWriter, EventSource
    from ctapipe.reco import ShowerProcessor
    from traitlets.config import Config

    config = Config(yaml.safe_load(CONFIG.read_text()))
    config.GammaPhysNetReconstructor.model_paths = [str(m) for m in models]
    if threads:
        config.GammaPhysNetReconstructor.n_threads = threads
    config.GammaPhysNetReconstructor.spin_threads = spin_threads
    hillas_config = copy.deepcopy(config)
    hillas_config.ShowerProcessor.reconstructor_types = ["HillasReconstructor"]

    common, events = [], []
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        for _ in range(2):  # the first pass warms the caches, the second is timed
            common, events = [], []
            source = EventSource(input_path, focal_length_choice="EQUIVALENT", max_events=max_events, config=config)
            calibrate = CameraCalibrator(subarray=source.subarray, config=config)
            process_images = ImageProcessor(subarray=source.subarray, config=config)
            with source:
                iterator = iter(source)
                while True:
                    start = time.perf_counter()
                    event = next(iterator, None)
                    if event is None:
                        break
                    calibrate(event)
                    process_images(event)
                    common.append(time.perf_counter() - start)
                    events.append(event)
        pipelines = {}
        for name, cfg in (("Hillas only", hillas_config), ("Hillas + GammaPhysNet", config)):
            shower = ShowerProcessor(subarray=source.subarray, config=cfg)
            writer = DataWriter(source, output_path=Path(tmp) / f"{len(pipelines)}.h5", config=cfg, overwrite=True)
            pipelines[name] = (shower, writer, [])
        try:
            for _ in range(passes):
                for event in events:
                    for shower, writer, times in pipelines.values():
                        copied = copy.deepcopy(event)
                        start = time.perf_counter()
                        shower(copied)
                        writer(copied)
                        times.append(time.perf_counter() - start)
        finally:
            for _, writer, _ in pipelines.values():
                writer.finish()
    base = np.median(common)
    return base, {name: base + np.median(times) for name, (_, _, times) in pipelines.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--max-events", type=int, default=30)
    parser.add_argument("--passes", type=int, default=10, help="passes over the events for the per-event figure")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: runtime default")
    parser.add_argument("--spin-threads", action="store_true", help="GammaPhysNetReconstructor.spin_threads")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        models = export_models(args.input, args.preset, workdir)
        common = [
            f"--config={CONFIG}",
            f"--input={args.input}",
            f"--max-events={args.max_events}",
            "--SimTelEventSource.focal_length_choice=EQUIVALENT",
            "--no-progress",
            "--overwrite",
            "--log-level=ERROR",
        ]
        hillas = common + [
            f"--output={workdir / 'hillas.h5'}",
            "--ShowerProcessor.reconstructor_types=HillasReconstructor",
        ]
        physnet = common + [f"--output={workdir / 'physnet.h5'}"]
        physnet += [f"--GammaPhysNetReconstructor.model_paths={m}" for m in models]
        if args.threads:
            physnet.append(f"--GammaPhysNetReconstructor.n_threads={args.threads}")
        physnet.append(f"--GammaPhysNetReconstructor.spin_threads={args.spin_threads}")

        run(hillas, workdir)  # warm caches (file, imports)
        t_hillas, t_physnet = [], []
        for _ in range(args.repeat):
            t_hillas.append(run(hillas, workdir))
            t_physnet.append(run(physnet, workdir))
        n_events = count_events(workdir / "physnet.h5")
        assert n_events == count_events(workdir / "hillas.h5")
        base, per_event = per_event_costs(
            args.input, models, args.threads, args.max_events, args.passes, args.spin_threads
        )

    th, tp = np.median(t_hillas) / n_events, np.median(t_physnet) / n_events
    print(
        f"{Path(args.input).name}: {n_events} events, preset {args.preset}, models {len(models)},"
        f" spin_threads {args.spin_threads}"
    )
    print(f"  whole ctapipe-process run, median of {args.repeat}, start-up included:")
    print(f"    Hillas only:             {th * 1e3:8.1f} ms/event")
    print(f"    Hillas + GammaPhysNet:   {tp * 1e3:8.1f} ms/event")
    print(f"    ratio: {tp / th:.2f}x")
    print(f"  per event in the event loop, median over {args.passes} passes (reading, calibration and")
    print(f"  image processing {base * 1e3:.1f} ms of it):")
    for name, value in per_event.items():
        print(f"    {name + ':':24s} {value * 1e3:8.1f} ms/event")
    added = per_event["Hillas + GammaPhysNet"] - per_event["Hillas only"]
    print(f"    added by GammaPhysNet: {added * 1e3:.1f} ms/event")
    print(f"    ratio: {per_event['Hillas + GammaPhysNet'] / per_event['Hillas only']:.2f}x")


if __name__ == "__main__":
    main()
