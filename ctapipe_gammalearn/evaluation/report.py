"""All reconstructors x all metrics -> one nested dict, its JSON and a printed table."""

import json
import math

import astropy.units as u
import numpy as np
from astropy.table import Table

from ..compat import PARTICLE_TYPE_KEY
from .events import KINDS, reconstructor_events
from .metrics import angular_benchmark, classification_benchmark, energy_benchmark, roc

__all__ = ["REFERENCE_PREFIXES", "METRICS", "benchmark_all", "choose_references", "to_json", "format_tables"]

#: the Hillas+RF baseline, first present wins
REFERENCE_PREFIXES = {
    "energy": ["RandomForestRegressor", "ExtraTreesRegressor"],
    PARTICLE_TYPE_KEY: ["RandomForestClassifier", "ExtraTreesClassifier"],
    "geometry": ["disp", "DispReconstructor", "HillasReconstructor"],
}

#: metric column -> (kind, label, lower is better)
METRICS = {
    "angular_resolution_deg": ("geometry", "angular resolution (68%) [deg]", True),
    "energy_resolution": ("energy", "energy resolution", True),
    "energy_bias": ("energy", "energy bias", None),
    "auc": (PARTICLE_TYPE_KEY, "ROC AUC", False),
    "background_efficiency": (PARTICLE_TYPE_KEY, "proton efficiency at fixed gamma efficiency", True),
}

_BENCHMARKS = {
    "energy": energy_benchmark,
    "geometry": angular_benchmark,
    PARTICLE_TYPE_KEY: classification_benchmark,
}


def _nan_to_none(value):
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _rows(table, columns):
    rows = []
    for row in table:
        entry = {
            "energy_min_tev": float(row["true_energy_low"].to_value(u.TeV)),
            "energy_max_tev": float(row["true_energy_high"].to_value(u.TeV)),
        }
        for col in columns:
            entry[col] = _nan_to_none(row[col])
        rows.append(entry)
    return rows


def _kind_columns(kind):
    cols = [c for c, (k, _, _) in METRICS.items() if k == kind]
    extra = ["n_gamma", "n_background", "gammaness_cut"] if kind == PARTICLE_TYPE_KEY else []
    return ["n_events", "valid_fraction", *extra, *cols]


def benchmark_all(tel_events, sub_events, reconstructors, bins, gamma_efficiency=0.7, background_ids=(101,), min_events=10):
    """``{level: {prefix: {kind: {"overall": {...}, "bins": [...], "roc": {...}}}}}`` plus the tables.

    Returns ``(metrics, tables)`` where ``tables[level][kind][prefix]`` is the
    per-bin astropy table (for printing and plots) and ``metrics`` is plain JSON-able data.
    """
    overall_bins = bins[[0, -1]]
    metrics, tables = {}, {}
    for level, events in (("mono", tel_events), ("stereo", sub_events)):
        metrics[level], tables[level] = {}, {kind: {} for kind in KINDS}
        for kind in KINDS:
            for prefix in reconstructors[level][kind]:
                reco = reconstructor_events(events, prefix, kind, level)
                kwargs = {"min_events": min_events}
                if kind == PARTICLE_TYPE_KEY:
                    kwargs.update(gamma_efficiency=gamma_efficiency, background_ids=background_ids)
                per_bin = _BENCHMARKS[kind](reco, bins, **kwargs)
                overall = _BENCHMARKS[kind](reco, overall_bins, **kwargs)
                columns = _kind_columns(kind)
                entry = {"bins": _rows(per_bin, columns), "overall": _rows(overall, columns)[0]}
                if kind == PARTICLE_TYPE_KEY:
                    fpr, tpr, auc = roc(reco, background_ids)
                    entry["overall"]["auc"] = _nan_to_none(auc)
                    entry["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
                metrics[level].setdefault(prefix, {})[kind] = entry
                tables[level][kind][prefix] = per_bin
    return metrics, tables


def choose_references(reconstructors, preferred=REFERENCE_PREFIXES):
    """Reference prefix per level and kind: the first preferred one present, else the first found."""
    refs = {}
    for level, kinds in reconstructors.items():
        refs[level] = {}
        for kind, prefixes in kinds.items():
            if not prefixes:
                continue
            chosen = next((p for p in preferred.get(kind, []) if p in prefixes), prefixes[0])
            refs[level][kind] = chosen
    return refs


def to_json(metrics, **header) -> str:
    """JSON text: header entries first, NaN written as null."""

    def clean(obj):
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return _nan_to_none(obj)

    return json.dumps(clean({**header, **metrics}), indent=1)


def _float(value):
    return np.nan if value is None else float(value)


def format_tables(tables, references, metrics=None):
    """Side-by-side text: one table per level and metric, one row per non-empty
    energy bin (plus ``all`` when ``metrics`` is given), one column per
    reconstructor (reference first), each followed by its ratio to the reference."""
    blocks = []
    for level, kinds in tables.items():
        for metric, (kind, label, _) in METRICS.items():
            per_prefix = kinds.get(kind, {})
            if not per_prefix:
                continue
            ref = references.get(level, {}).get(kind)
            order = sorted(per_prefix, key=lambda p: (p != ref, p))
            first = per_prefix[order[0]]
            filled = np.asarray(first["n_events"]) > 0
            columns = {
                "E_min [TeV]": [f"{v:.3g}" for v in first["true_energy_low"].to_value(u.TeV)[filled]],
                "E_max [TeV]": [f"{v:.3g}" for v in first["true_energy_high"].to_value(u.TeV)[filled]],
                "n_events": list(np.asarray(first["n_events"])[filled]),
            }
            values = {p: list(np.asarray(per_prefix[p][metric], dtype=float)[filled]) for p in order}
            if metrics is not None:
                columns["E_min [TeV]"].append("all")
                columns["E_max [TeV]"].append("")
                columns["n_events"].append(metrics[level][order[0]][kind]["overall"]["n_events"])
                for p in order:
                    values[p].append(_float(metrics[level][p][kind]["overall"].get(metric)))
            out = Table(columns)
            for p in order:
                out[p] = np.array(values[p])
                out[p].format = ".3f"
                if ref and p != ref and metric != "energy_bias":
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out[f"{p}/ref"] = out[p] / np.array(values[ref])
                    out[f"{p}/ref"].format = ".2f"
            title = f"[{level}] {label}" + (f" (reference: {ref})" if ref else "")
            blocks.append(title + "\n" + "\n".join(out.pformat(max_lines=-1, max_width=-1)))
    return "\n\n".join(blocks)
