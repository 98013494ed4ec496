"""All reconstructors x all metrics -> one nested dict, its JSON and a printed table."""

import json
import math

import astropy.units as u
import numpy as np
from astropy.table import Table

from ..compat import PARTICLE_TYPE_KEY
from .events import KINDS, TEL_TYPE_COLUMN, reconstructor_events
from .metrics import angular_benchmark, classification_benchmark, energy_benchmark, roc

__all__ = [
    "REFERENCE_PREFIXES",
    "METRICS",
    "BY_TYPE",
    "benchmark_all",
    "telescope_types",
    "section_name",
    "section_level",
    "section_metrics",
    "choose_references",
    "merge_references",
    "selected_counts",
    "to_json",
    "format_tables",
]

#: metrics.json key of the mono metrics per telescope type
BY_TYPE = "mono_by_type"

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


def telescope_types(tel_events):
    """Sorted telescope types of the telescope events (empty without a type column)."""
    if TEL_TYPE_COLUMN not in tel_events.colnames:
        return []
    return sorted({str(t) for t in np.asarray(tel_events[TEL_TYPE_COLUMN])})


def section_name(level, tel_type=None):
    """Key of a per-type section in ``tables``: ``mono/<type>``; the level itself when pooled."""
    return level if tel_type is None else f"{level}/{tel_type}"


def section_level(section):
    """``mono`` or ``stereo``: the level of a section of ``tables`` (see `section_name`)."""
    return section.partition("/")[0]


def section_metrics(metrics, section):
    """``{prefix: {kind: entry}}`` of a section of ``tables`` (see `section_name`)."""
    level, _, tel_type = section.partition("/")
    return metrics[BY_TYPE][tel_type] if tel_type else metrics[level]


def _benchmark_level(
    events, level, reconstructors, bins, drop_unmeasured, gamma_efficiency, background_ids, min_events
):
    overall_bins = bins[[0, -1]]
    metrics, tables = {}, {kind: {} for kind in KINDS}
    for kind in KINDS:
        for prefix in reconstructors[kind]:
            reco = reconstructor_events(events, prefix, kind, level)
            if drop_unmeasured and not np.any(reco["valid"]):
                continue
            options = {"min_events": min_events}
            if kind == PARTICLE_TYPE_KEY:
                options.update(gamma_efficiency=gamma_efficiency, background_ids=background_ids)
            per_bin = _BENCHMARKS[kind](reco, bins, **options)
            overall = _BENCHMARKS[kind](reco, overall_bins, **options)
            columns = _kind_columns(kind)
            entry = {"bins": _rows(per_bin, columns), "overall": _rows(overall, columns)[0]}
            if kind == PARTICLE_TYPE_KEY:
                fpr, tpr, auc = roc(reco, background_ids)
                entry["overall"]["auc"] = _nan_to_none(auc)
                entry["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
            metrics.setdefault(prefix, {})[kind] = entry
            tables[kind][prefix] = per_bin
    return metrics, tables


def benchmark_all(
    tel_events, sub_events, reconstructors, bins, gamma_efficiency=0.7, background_ids=(101,), min_events=10
):
    """``{level: {prefix: {kind: {"overall": {...}, "bins": [...], "roc": {...}}}}}`` plus the tables.

    ``mono`` pools the telescope events of all telescopes. Where they hold more
    than one telescope type (`TEL_TYPE_COLUMN`), ``metrics["mono_by_type"][type]``
    holds the same for each type's events alone; a reconstructor with no valid
    prediction on a type's events is left out of that type.

    Returns ``(metrics, tables)`` where ``tables[section][kind][prefix]`` is the
    per-bin astropy table (for printing and plots; sections are ``mono``,
    ``mono/<type>``, ``stereo``, see `section_name`) and ``metrics`` is plain JSON-able data.
    """
    options = dict(gamma_efficiency=gamma_efficiency, background_ids=tuple(background_ids), min_events=min_events)
    metrics, tables = {}, {}
    metrics["mono"], tables["mono"] = _benchmark_level(
        tel_events, "mono", reconstructors["mono"], bins, False, **options
    )
    types = telescope_types(tel_events)
    if len(types) > 1:
        metrics[BY_TYPE] = {}
        column = np.asarray(tel_events[TEL_TYPE_COLUMN])
        for tel_type in types:
            events = tel_events[column == tel_type]
            metrics[BY_TYPE][tel_type], tables[section_name("mono", tel_type)] = _benchmark_level(
                events, "mono", reconstructors["mono"], bins, True, **options
            )
    metrics["stereo"], tables["stereo"] = _benchmark_level(
        sub_events, "stereo", reconstructors["stereo"], bins, False, **options
    )
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


def merge_references(chosen, preferred=REFERENCE_PREFIXES):
    """``preferred`` with one chosen prefix per kind (``{kind: prefix}``) put in front."""
    return {**preferred, **{kind: [prefix] for kind, prefix in chosen.items()}}


def selected_counts(tel_events, sub_events, metrics):
    """Events of the common selection: ``mono``, ``stereo`` and, where measured, per telescope type."""
    counts = {"mono": len(tel_events), "stereo": len(sub_events)}
    if BY_TYPE in metrics:
        types = np.asarray(tel_events[TEL_TYPE_COLUMN])
        counts[BY_TYPE] = {t: int(np.count_nonzero(types == t)) for t in metrics[BY_TYPE]}
    return counts


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
    for section, kinds in tables.items():
        level = section_level(section)
        for metric, (kind, label, _) in METRICS.items():
            per_prefix = kinds.get(kind, {})
            if not per_prefix:
                continue
            ref = references.get(level, {}).get(kind)
            ref = ref if ref in per_prefix else None
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
                measured = section_metrics(metrics, section)
                columns["n_events"].append(measured[order[0]][kind]["overall"]["n_events"])
                for p in order:
                    values[p].append(_float(measured[p][kind]["overall"].get(metric)))
            out = Table(columns)
            for p in order:
                out[p] = np.array(values[p])
                out[p].format = ".3f"
                if ref and p != ref and metric != "energy_bias":
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out[f"{p}/ref"] = out[p] / np.array(values[ref])
                    out[f"{p}/ref"].format = ".2f"
            title = f"[{section}] {label}" + (f" (reference: {ref})" if ref else "")
            blocks.append(title + "\n" + "\n".join(out.pformat(max_lines=-1, max_width=-1)))
    return "\n\n".join(blocks)
