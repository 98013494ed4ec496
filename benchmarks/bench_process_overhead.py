"""Cost of the GammaPhysNetReconstructor inside ctapipe-process, per event.

    python benchmarks/bench_process_overhead.py [--input FILE.simtel.zst] [--max-events 20]
        [--preset small] [--repeat 3] [--threads 0]

Runs ctapipe-process on the same sim_telarray events twice per round, once with
HillasReconstructor only and once with HillasReconstructor + GammaPhysNetReconstructor
(untrained networks, one per camera), alternating so both see the same machine
load. Prints the median wall time per event of each and their ratio.
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--max-events", type=int, default=30)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: runtime default")
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

        run(hillas, workdir)  # warm caches (file, imports)
        t_hillas, t_physnet = [], []
        for _ in range(args.repeat):
            t_hillas.append(run(hillas, workdir))
            t_physnet.append(run(physnet, workdir))
        n_events = count_events(workdir / "physnet.h5")
        assert n_events == count_events(workdir / "hillas.h5")

    th, tp = np.median(t_hillas) / n_events, np.median(t_physnet) / n_events
    print(f"{Path(args.input).name}: {n_events} events, preset {args.preset}, models {len(models)}")
    print(f"  Hillas only:             {th * 1e3:8.1f} ms/event")
    print(f"  Hillas + GammaPhysNet:   {tp * 1e3:8.1f} ms/event")
    print(f"  ratio: {tp / th:.2f}x")


if __name__ == "__main__":
    main()
