"""Domain adaptation on simulated LST-1 data: every method trained on nominal MC and tested on a
shifted, labelled target (docs/domain_adaptation.md holds the tables).

    python benchmarks/domain_adaptation.py --work-dir da_bench            # shift B, every row
    python benchmarks/domain_adaptation.py --work-dir da_bench --rows none dann oracle --epochs 3
    python benchmarks/domain_adaptation.py --work-dir da_bench_a --shift A

Shift A (``--shift A``, the seeds' own): nominal MC + Poisson(0.4 p.e.) per pixel, added to
nominal files by ``ctapipe-gammalearn-add-nsb`` (cleaning and parameters recomputed).
Shift B (the default): 3x NSB, 2 % dead pixels, 3 stars, 0.8x optical efficiency
(docs/domains.md), one conditions seed for all shifted files. Files (seeds and obs ids of their own):
- source: nominal diffuse gammas and protons, ``--parts`` files each (the training validates on
  whole files: one per class);
- target: shifted gammas and protons, as many files: unlabelled target of the adaptation rows,
  labelled training set of the oracle;
- test: shifted diffuse gammas and protons (every row is measured there), shifted point-like
  gammas at 0.4 deg wobble (with the protons: each row's simulated 1 h Crab observation), and
  nominal diffuse gammas (the source side of the A-distance).
Rows: γ-PhysNet trained on the source only, with matched NSB, with DANN, conditional DANN,
DeepCORAL and DAN; the oracle (trained on the labelled target); Hillas+RF trained on the source.
Every γ-PhysNet row has the same preset, epochs and seed. Each step is skipped when its output
exists, so an interrupted run goes on where it stopped. Prints a markdown table.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
RESOURCES = Path(__file__).resolve().parents[1] / "ctapipe_gammalearn" / "resources"
SHIFT_B = ["--nsb-scale=3", "--stars=3", "--dead-pixel-fraction=0.02", "--optical-efficiency-scale=0.8",
           "--conditions-seed=1"]
GAMMA = ["--particle=gamma", "--energy-min=0.01", "--energy-max=100", "--core-max=500", "--viewcone-max=2.5"]
# point-like gammas at the usual 0.4 deg wobble: the simulated Crab observation's signal
GAMMA_POINT = [a for a in GAMMA if not a.startswith("--viewcone-max")] + ["--viewcone-max=0", "--wobble=0.4"]
PROTON = ["--particle=proton", "--energy-min=0.02", "--energy-max=200", "--core-max=700", "--viewcone-max=8"]
ROWS = {  # row -> extra arguments of ctapipe-train-gammalearn (None: trained on the labelled target)
    "none": [],
    "nsb-match": ["--nsb-match={target}"],
    "dann": ["--target={target}", "--domain-adaptation=dann"],
    "cdann": ["--target={target}", "--domain-adaptation=cdann"],
    "coral": ["--target={target}", "--domain-adaptation=coral"],
    "dan": ["--target={target}", "--domain-adaptation=dan"],
    "oracle": None,
}

TEST_SETS = ("test_gamma", "test_proton", "test_gamma_point")
# report -> its test sets: diffuse gammas for the resolutions and AUC, point-like gammas for
# the simulated Crab observation (the benchmark makes one only from point-like gammas)
REPORTS = {"": ("test_gamma", "test_proton"), "_point": ("test_gamma_point", "test_proton")}


def run(args, log):
    start = time.perf_counter()
    with open(log, "w") as out:
        subprocess.run([str(a) for a in args], check=True, stdout=out, stderr=subprocess.STDOUT)
    print(f"  {Path(args[0]).name} {time.perf_counter() - start:.0f} s", flush=True)


SHIFT_A_NSB_PE = 0.4


def simulate(work, name, kind, n, seed, spectral_index, shift=None):
    """One DL1 file: nominal (``shift`` None) or shifted ("A" or "B")."""
    path = work / "dl1" / f"{name}.dl1.h5"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    conditions = SHIFT_B if shift == "B" else []
    simulated = path.with_name(f"{name}.nominal.dl1.h5") if shift == "A" else path
    if not simulated.exists():
        kind_args = {"gamma": GAMMA, "gamma_point": GAMMA_POINT, "proton": PROTON}[kind]
        run([BIN / "ctapipe-gammalearn-simulate", *kind_args, f"--n-events={n}",
             f"--seed={seed}", f"--obs-id={seed}", f"--spectral-index={spectral_index}", *conditions,
             f"--output={simulated}", "--no-progress"], work / "logs" / f"sim_{name}.log")
    if simulated != path:
        run([BIN / "ctapipe-gammalearn-add-nsb", f"--input={simulated}", f"--output={path}",
             f"--nsb-pe={SHIFT_A_NSB_PE}", f"--seed={seed}", "--no-progress"], work / "logs" / f"add_nsb_{name}.log")
        simulated.unlink()
    return path


def make_files(work, args):
    files = {"source": [], "target": []}
    n_gammas, n_protons = args.train_gammas // args.parts, args.train_protons // args.parts
    for part in range(1, args.parts + 1):  # seeds: gammas base + part, protons base + 10 + part
        for domain, shift, base in (("source", None, 100), ("target", args.shift, 300)):
            files[domain] += [
                (simulate(work, f"{domain}_gamma_{part}", "gamma", n_gammas, base + part, -2, shift), "signal"),
                (simulate(work, f"{domain}_proton_{part}", "proton", n_protons, base + 10 + part, -2, shift),
                 "background"),
            ]
    files["test_gamma"] = simulate(work, "test_gamma_shifted", "gamma", args.test_gammas, 501, -1.5, args.shift)
    files["test_proton"] = simulate(work, "test_proton_shifted", "proton", args.test_protons, 502, -1.5, args.shift)
    files["source_test_gamma"] = simulate(work, "test_gamma_nominal", "gamma", args.test_gammas, 503, -1.5)
    files["test_gamma_point"] = simulate(work, "test_gamma_point_shifted", "gamma_point", args.test_gammas, 504,
                                         -1.5, args.shift)
    return files


def train(work, row, files, args):
    out = work / "models" / row
    if (out / "report.json").exists():
        return out
    labelled = files["target"] if ROWS[row] is None else files["source"]
    target = ",".join(str(p) for p, role in files["target"])
    extra = [a.format(target=p) for a in (ROWS[row] or []) for p in target.split(",")]
    extra = list(dict.fromkeys(extra))  # a method flag once, one --target/--nsb-match per file
    run([BIN / "ctapipe-train-gammalearn", *(f"--{role}={p}" for p, role in labelled), f"--output-dir={out}",
         f"--preset={args.preset}", f"--epochs={args.epochs}", f"--seed={args.seed}", "--no-progress", "--overwrite",
         *extra], work / "logs" / f"train_{row}.log")
    return out


def baseline(work, files):
    """Hillas+RF on the source: trained once, applied to the shifted test files."""
    models = work / "models" / "hillas_rf"
    models.mkdir(parents=True, exist_ok=True)
    merged = {}
    for role in ("signal", "background"):
        merged[role] = work / "dl1" / f"source_{role}.merged.dl1.h5"
        if not merged[role].exists():
            run([BIN / "ctapipe-merge", *(p for p, r in files["source"] if r == role), f"--output={merged[role]}"],
                work / "logs" / f"merge_{role}.log")
    for tool, name, inputs in (
        ("ctapipe-train-energy-regressor", "energy_regressor", [f"--input={merged['signal']}"]),
        ("ctapipe-train-disp-reconstructor", "disp_reconstructor", [f"--input={merged['signal']}"]),
        ("ctapipe-train-particle-classifier", "particle_classifier",
         [f"--signal={merged['signal']}", f"--background={merged['background']}"]),
    ):
        if not (models / f"{name}.pkl").exists():
            run([BIN / tool, "-c", RESOURCES / f"baseline_{name}.yaml", *inputs, f"--output={models / name}.pkl"],
                work / "logs" / f"train_{name}.log")
    dl2 = {}
    for kind in TEST_SETS:
        dl2[kind] = work / "dl2" / f"{kind}.baseline.dl2.h5"
        if not dl2[kind].exists():
            dl2[kind].parent.mkdir(parents=True, exist_ok=True)
            run([BIN / "ctapipe-apply-models", "-c", RESOURCES / "baseline_apply.yaml", f"--input={files[kind]}",
                 *(f"--reconstructor={models / n}.pkl" for n in ("energy_regressor", "disp_reconstructor",
                                                                  "particle_classifier")),
                 f"--output={dl2[kind]}"], work / "logs" / f"apply_baseline_{kind}.log")
    return dl2


def evaluate(work, row, model_dir, baseline_dl2, files):
    """DL2 of the row on the shifted test files, its benchmark reports (diffuse and point-like
    gammas) and its A-distance: returns {report suffix: its metrics.json} and the A-distance file."""
    onnx = next(model_dir.glob("gammaphysnet_*.onnx"))
    metrics = {}
    for suffix, kinds in REPORTS.items():
        report = work / "reports" / f"{row}{suffix}"
        metrics[suffix] = report / "metrics.json"
        if metrics[suffix].exists():
            continue
        dl2 = []
        for kind in kinds:
            dl2.append(work / "dl2" / f"{kind}.{row}.dl2.h5")
            if not dl2[-1].exists():
                run([BIN / "ctapipe-apply-gammalearn", f"--input={baseline_dl2[kind]}", f"--model={onnx}",
                     f"--output={dl2[-1]}", "--no-progress"], work / "logs" / f"apply_{row}_{kind}.log")
        run([BIN / "ctapipe-gammalearn-benchmark", *(f"--input={p}" for p in dl2), f"--output-dir={report}"],
            work / "logs" / f"benchmark_{row}{suffix}.log")
    distance = work / "distance" / row
    if not (distance / "domain_distance.json").exists():
        run([BIN / "ctapipe-gammalearn-domain-distance", f"--source={files['source_test_gamma']}",
             f"--target={files['test_gamma']}", f"--model={model_dir}", f"--output-dir={distance}", "--no-progress"],
            work / "logs" / f"distance_{row}.log")
    return metrics, distance / "domain_distance.json"


def _overall(metrics, prefix, kind, key, level="mono"):
    return metrics[level][prefix][kind]["overall"].get(key)


def _band(metrics, prefix, e_min, e_max, level="mono"):
    """Angular resolution of the events between e_min and e_max TeV: the event-weighted mean of the bins'."""
    bins = [b for b in metrics[level][prefix]["geometry"]["bins"]
            if b["energy_min_tev"] >= e_min * 0.999 and b["energy_max_tev"] <= e_max * 1.001
            and b.get("angular_resolution_deg") is not None]
    n = sum(b["n_events"] for b in bins)
    return sum(b["angular_resolution_deg"] * b["n_events"] for b in bins) / n if n else None


def _significance(point_metrics, method, cuts):
    """Li & Ma significance of the simulated 1 h Crab observation of ``method`` with ``cuts``."""
    found = [r["significance"] for r in point_metrics.get("observation") or []
             if r["method"] == method and r["cuts"] == cuts]
    return found[0] if found else None


def table_row(name, metrics, distance, prefixes, point_metrics=None, method="GammaPhysNet"):
    energy, classifier, geometry = prefixes
    point_metrics = point_metrics or {}
    return {
        "row": name,
        "auc": _overall(metrics, classifier, "classification", "auc"),
        "protons_kept": _overall(metrics, classifier, "classification", "background_efficiency"),
        "energy_resolution": _overall(metrics, energy, "energy", "energy_resolution"),
        "angular_resolution": _overall(metrics, geometry, "geometry", "angular_resolution_deg"),
        "angular_low": _band(metrics, geometry, 0.02, 0.2),
        "angular_mid": _band(metrics, geometry, 0.2, 2.0),
        "angular_high": _band(metrics, geometry, 2.0, 200.0),
        "a_distance": distance,
        "significance_efficiency": _significance(point_metrics, method, "efficiency"),
        "significance_best": _significance(point_metrics, method, "best"),
    }


def print_table(rows):
    columns = ("auc", "protons_kept", "energy_resolution", "angular_resolution", "angular_low", "angular_mid",
               "angular_high", "a_distance", "significance_efficiency", "significance_best")
    print("| row | AUC | protons kept at 70 % γ | ΔE/E | θ68 all [deg] | θ68 < 0.2 TeV | θ68 0.2–2 TeV | "
          "θ68 > 2 TeV | A-distance | σ 1 h Crab, efficiency cuts | σ, best cuts |")
    print("|---|" + "---|" * len(columns))
    for row in rows:
        cells = ["—" if row[c] is None else f"{row[c]:.3f}" for c in columns]
        print(f"| {row['row']} | " + " | ".join(cells) + " |")


# +1: the oracle should score higher (AUC); -1: lower (angular resolution)
BETTER = {"auc": +1, "angular_resolution": -1}


def gap_lines(rows):
    """Share of the source-only → oracle gap recovered by each adaptation row (AUC, angular
    resolution); where the oracle is not better than source-only there is no gap to recover."""
    by = {r["row"]: r for r in rows}
    if "none" not in by or "oracle" not in by:
        return []
    lines = []
    for key, sign in BETTER.items():
        gap = by["oracle"][key] - by["none"][key]
        if gap * sign <= 0:
            lines.append(f"{key}: the oracle ({by['oracle'][key]:.3f}) is not better than source-only"
                         f" ({by['none'][key]:.3f}): no gap to recover")
            continue
        for name, row in by.items():
            if name not in ("none", "oracle", "Hillas+RF"):
                lines.append(f"{name}: {key} gap recovered {(row[key] - by['none'][key]) / gap:+.0%}")
    return lines


def gaps(rows):
    for line in gap_lines(rows):
        print(line)
    by = {r["row"]: r for r in rows}
    if "none" not in by:
        return
    for name, row in by.items():
        if row["a_distance"] is not None and by["none"]["a_distance"]:
            print(f"{name}: A-distance {row['a_distance']:.2f} = {row['a_distance'] / by['none']['a_distance']:.2f}x "
                  "source-only")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("da_bench"))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--train-gammas", type=int, default=2000)
    parser.add_argument("--train-protons", type=int, default=1000)
    parser.add_argument("--test-gammas", type=int, default=1500)
    parser.add_argument("--test-protons", type=int, default=1000)
    parser.add_argument("--parts", type=int, default=2, choices=range(2, 10),
                        help="files per class and domain; the training validates on one of them")
    parser.add_argument("--shift", choices=("A", "B"), default="B",
                        help="A: + Poisson(0.4 p.e.) per pixel; B: 3x NSB, dead pixels, stars, 0.8x efficiency")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.work_dir
    (work / "logs").mkdir(parents=True, exist_ok=True)
    print(f"{time.strftime('%H:%M:%S')} simulating", flush=True)
    files = make_files(work, args)
    baseline_dl2 = baseline(work, files)
    rows = []
    for row in args.rows:
        print(f"{time.strftime('%H:%M:%S')} row {row}", flush=True)
        model_dir = train(work, row, files, args)
        metrics_paths, distance_path = evaluate(work, row, model_dir, baseline_dl2, files)
        metrics, point_metrics = (json.loads(metrics_paths[suffix].read_text()) for suffix in ("", "_point"))
        distance = json.loads(distance_path.read_text())["a_distance"]
        rows.append(table_row(row, metrics, distance,
                              ("GammaPhysNetEnergy", "GammaPhysNetClassifier", "GammaPhysNetGeometry"), point_metrics))
        if len(rows) == 1:
            refs = metrics["references"]["mono"]
            hillas = table_row("Hillas+RF", metrics, None, (refs["energy"], refs["classification"], refs["geometry"]),
                               point_metrics, method="reference")
    rows.append(hillas)
    print_table(rows)
    gaps(rows)
    (work / "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
