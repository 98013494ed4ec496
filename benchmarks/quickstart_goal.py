"""The quickstart's physics goal, bin by bin, from a benchmark report's metrics.json.

Goal (in each true-energy bin with at least ``--min-events`` events): γ-PhysNet's
angular and energy resolution at most ``--max-ratio`` times the Hillas+RF
baseline's, and a higher ROC AUC.

    python benchmarks/quickstart_goal.py demo/report_point/metrics.json
"""

import argparse
import json
import math

# (metric key, γ-PhysNet prefix, reference kind in metrics.json "references", better when)
METRICS = (
    ("angular_resolution_deg", "GammaPhysNetGeometry", "geometry", "lower"),
    ("energy_resolution", "GammaPhysNetEnergy", "energy", "lower"),
    ("auc", "GammaPhysNetClassifier", "classification", "higher"),
)
SECTION = {"angular_resolution_deg": "geometry", "energy_resolution": "energy", "auc": "classification"}


def _bins(level, prefix, metric):
    section = level.get(prefix, {}).get(SECTION[metric], {})
    return {(round(b["energy_min_tev"], 6), round(b["energy_max_tev"], 6)): b for b in section.get("bins", [])}


def goal_rows(metrics, level="mono", min_events=100, max_ratio=0.7):
    """One row per (metric, energy bin) with enough events: values, ratio, met."""
    rows = []
    data = metrics[level]
    for metric, prefix, kind, better in METRICS:
        reference = metrics["references"][level].get(kind)
        ours, theirs = _bins(data, prefix, metric), _bins(data, reference, metric)
        for key in sorted(ours):
            a, b = ours[key], theirs.get(key)
            if b is None or min(a["n_events"], b["n_events"]) < min_events:
                continue
            va, vb = a.get(metric), b.get(metric)
            if va is None or vb is None or not (math.isfinite(va) and math.isfinite(vb)):
                continue
            ratio = va / vb if vb else math.inf
            met = ratio <= max_ratio if better == "lower" else va > vb
            rows.append(dict(metric=metric, e_min=key[0], e_max=key[1], n=a["n_events"], ours=va, reference=vb,
                             ratio=ratio, met=met))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", help="metrics.json of ctapipe-gammalearn-benchmark")
    parser.add_argument("--level", default="mono")
    parser.add_argument("--min-events", type=int, default=100)
    parser.add_argument("--max-ratio", type=float, default=0.7)
    args = parser.parse_args()
    with open(args.metrics) as f:
        metrics = json.load(f)
    rows = goal_rows(metrics, args.level, args.min_events, args.max_ratio)
    print("| metric | E_true (TeV) | events | γ-PhysNet | Hillas+RF | ratio | goal met |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['metric']} | {r['e_min']:.3g}–{r['e_max']:.3g} | {r['n']} | {r['ours']:.3f} | "
              f"{r['reference']:.3f} | {r['ratio']:.2f} | {'yes' if r['met'] else 'no'} |")
    for metric, *_ in METRICS:
        mine = [r for r in rows if r["metric"] == metric]
        better = sum(r["ratio"] < 1 if metric != "auc" else r["met"] for r in mine)
        print(f"{metric}: goal met in {sum(r['met'] for r in mine)} of {len(mine)} bins; "
              f"γ-PhysNet better than Hillas+RF in {better}")


if __name__ == "__main__":
    main()
