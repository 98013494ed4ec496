"""Same seeds, two versions of the simulator: did the physics move, and how much faster is it?

Each version simulates the same seeded samples in its own process (the previous version is a
copy of the package, e.g. from ``git archive``, put first on ``PYTHONPATH``), one process at
a time, alternating, so that both see the same machine load. For each sample it prints the
16/50/84 % quantiles of true energy, true p.e., intensity, width and length (LST-1, tailcuts 8/4)
with the two-sample KS p-value, the thrown showers per triggered event, and the generation's
CPU seconds (median over --repeat) with their ratio.

    git archive HEAD~1 ctapipe_gammalearn | tar -x -C /tmp/previous
    python benchmarks/compare_simulator_versions.py --previous /tmp/previous \\
        [--settings quickstart] [--particles proton gamma] [--n-events 400] [--repeat 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
QUANTITIES = ("true energy (TeV)", "true p.e.", "intensity (p.e.)", "width (deg)", "length (deg)")


def simulate(settings, particle, n_events, seed, output):
    """Run in the version's own process: generate, clean, parametrise, save the quantities."""
    sys.path.insert(0, str(HERE))
    from bench_simulation_speed import SETTINGS
    from ctapipe.coordinates import TelescopeFrame
    from ctapipe.image import hillas_parameters, tailcuts_clean

    from ctapipe_gammalearn.simulation import AirShowerSimEventSource

    source = AirShowerSimEventSource(n_events=n_events, seed=seed, **SETTINGS[settings][particle])
    start = time.process_time()
    events = list(source)
    cpu = time.process_time() - start
    geometry = source.subarray.tel[1].camera.geometry.transform_to(TelescopeFrame())
    rows = []
    for event in events:
        if 1 not in event.dl1.tel:
            continue
        image = event.dl1.tel[1].image
        mask = tailcuts_clean(geometry, image, picture_thresh=8, boundary_thresh=4)
        width = length = np.nan
        if mask.sum() >= 3:
            hillas = hillas_parameters(geometry[mask], image[mask])
            width, length = hillas.width.to_value("deg"), hillas.length.to_value("deg")
        row = (event.simulation.shower.energy.to_value("TeV"), event.simulation.tel[1].true_image_sum,
               image[mask].sum(), width, length)
        rows.append([float(x) for x in row])
    Path(output).write_text(json.dumps(dict(cpu=cpu, thrown=source.n_thrown, events=len(events), rows=rows)))


def run_version(previous, args, particle, seed, workdir):
    """One sample with one version (``previous``: its package directory, or None for this checkout)."""
    output = Path(workdir) / f"{'previous' if previous else 'current'}_{particle}_{seed}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if previous:
        env["PYTHONPATH"] = os.pathsep.join([str(previous), env.get("PYTHONPATH", "")])
    command = [sys.executable, __file__, "--simulate", args.settings, particle, str(args.n_events), str(seed),
               str(output)]
    subprocess.run(command, env=env, check=True)
    return json.loads(output.read_text())


def ks_pvalue(a, b):
    from scipy.stats import ks_2samp

    return ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)]).pvalue


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--simulate":
        settings, particle, n_events, seed, output = sys.argv[2:7]
        simulate(settings, particle, int(n_events), int(seed), output)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--previous", type=Path, required=True, help="directory holding the previous ctapipe_gammalearn"
    )
    parser.add_argument("--settings", default="quickstart", choices=["benchmark", "quickstart", "prod5"])
    parser.add_argument("--particles", nargs="+", default=["proton", "gamma"])
    parser.add_argument("--n-events", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3, help="seeds per particle (timing median, pooled physics)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not (args.previous / "ctapipe_gammalearn" / "__init__.py").is_file():
        parser.error(f"{args.previous}: no ctapipe_gammalearn package in it")

    seeds = range(args.seed, args.seed + args.repeat)
    print(f"settings {args.settings}, {args.n_events} events per sample, seeds {seeds[0]}..{seeds[-1]}")
    with tempfile.TemporaryDirectory() as workdir:
        for particle in args.particles:
            results = {"previous": [], "current": []}
            for seed in seeds:
                results["previous"].append(run_version(args.previous, args, particle, seed, workdir))
                results["current"].append(run_version(None, args, particle, seed, workdir))
            report(particle, results)


def report(particle, results):
    cpu = {k: np.median([r["cpu"] for r in v]) for k, v in results.items()}
    thrown = {k: sum(r["thrown"] for r in v) / sum(r["events"] for r in v) for k, v in results.items()}
    rows = {k: np.array(sum((r["rows"] for r in v), []), dtype=float) for k, v in results.items()}
    print(f"\n{particle}: CPU s per sample (median) previous {cpu['previous']:.2f}, current {cpu['current']:.2f},"
          f" speed-up {cpu['previous'] / cpu['current']:.2f}x; thrown per triggered {thrown['previous']:.1f} /"
          f" {thrown['current']:.1f}")
    print("| quantity | previous q16 / q50 / q84 | current | KS p |")
    print("|---|---|---|---|")
    for i, name in enumerate(QUANTITIES):
        a, b = rows["previous"][:, i], rows["current"][:, i]
        qa, qb = (np.nanpercentile(x, [16, 50, 84]) for x in (a, b))
        print(f"| {name} | {' / '.join(f'{q:.3g}' for q in qa)} | {' / '.join(f'{q:.3g}' for q in qb)} |"
              f" {ks_pvalue(a, b):.2f} |")


if __name__ == "__main__":
    main()
