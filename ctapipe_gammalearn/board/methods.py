"""A benchmark's ``metrics.json`` -> per-method curves against true energy and summary numbers.

The benchmark names reconstructors by DL2 prefix and kind (``GammaPhysNetEnergy``,
``RandomForestClassifier``, ``disp``); the board shows methods: the prefixes of one
method share a stem (``GammaPhysNet``, as the benchmark pairs them for its sensitivity),
and the Hillas+RF baseline (random forests and disp) is one method, ``Hillas+RF``.
"""

import math
from dataclasses import dataclass, field

from ..compat import PARTICLE_TYPE_KEY

__all__ = [
    "BASELINE",
    "ENERGY_METRICS",
    "Curve",
    "MethodResult",
    "RunMetrics",
    "method_name",
    "observation_names",
    "triple_name",
    "run_metrics",
    "value_at",
]

BASELINE = "Hillas+RF"
#: the prefixes of the Hillas+RF baseline (evaluation/report.py REFERENCE_PREFIXES without
#: ctapipe's geometric HillasReconstructor, which is a method of its own)
BASELINE_PREFIXES = frozenset(
    {"RandomForestRegressor", "ExtraTreesRegressor", "RandomForestClassifier", "ExtraTreesClassifier", "disp",
     "DispReconstructor"}
)
#: the benchmark's pairing suffixes (evaluation/sensitivity.py)
_SUFFIXES = ("Classifier", "Regressor", "Reconstructor", "Energy", "Geometry")
#: per-true-energy metrics of metrics.json -> (kind, axis label, log axis)
ENERGY_METRICS = {
    "angular_resolution_deg": ("geometry", "angular resolution (68%) [deg]", False),
    "energy_resolution": ("energy", "energy resolution", False),
    "energy_bias": ("energy", "energy bias", False),
    "auc": (PARTICLE_TYPE_KEY, "ROC AUC", False),
    "background_efficiency": (PARTICLE_TYPE_KEY, "protons kept at fixed gamma efficiency", True),
}
#: metrics.json keys of the observation rows' kinds of cuts, in the benchmark's order
CUT_KINDS = ("efficiency", "best", "threshold")


@dataclass
class Curve:
    """A quantity in bins of energy (TeV); None where unmeasured."""

    low: list
    high: list
    values: list

    @property
    def centers(self):
        return [math.sqrt(lo * hi) for lo, hi in zip(self.low, self.high, strict=True)]


@dataclass
class MethodResult:
    prefixes: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    overall: dict = field(default_factory=dict)
    roc: dict | None = None


@dataclass
class RunMetrics:
    """What the board draws of one run's benchmark (all empty without one)."""

    level: str | None = None
    methods: dict = field(default_factory=dict)
    sensitivity: dict = field(default_factory=dict)
    effective_area: dict = field(default_factory=dict)
    observation: dict = field(default_factory=dict)
    gamma_efficiency: float | None = None


def _stem(prefix):
    for suffix in _SUFFIXES:
        if prefix.endswith(suffix) and len(prefix) > len(suffix):
            return prefix[: -len(suffix)]
    return prefix


def method_name(prefix):
    """``GammaPhysNetEnergy`` -> ``GammaPhysNet``; a baseline prefix -> ``Hillas+RF``."""
    return BASELINE if prefix in BASELINE_PREFIXES else _stem(prefix)


def triple_name(triple):
    """The method of a gammaness/energy/geometry triple: its one name, or the names joined by ``+``."""
    names = sorted({method_name(p) for p in triple.values() if p})
    return names[0] if len(names) == 1 else "+".join(names)


def _level(metrics, level):
    for candidate in (level, "stereo" if level == "mono" else "mono"):
        if metrics.get(candidate):
            return candidate
    return None


def _curve(bins, column):
    return Curve(
        low=[b["energy_min_tev"] for b in bins],
        high=[b["energy_max_tev"] for b in bins],
        values=[b.get(column) for b in bins],
    )


def _methods(level_metrics, references):
    """``{method: MethodResult}``; two prefixes of one kind and method: the benchmark's reference
    keeps the method name, the other keeps its prefix."""
    methods = {}
    ordered = sorted(level_metrics.items(), key=lambda item: item[0] not in references.values())
    for prefix, kinds in ordered:
        for kind, entry in kinds.items():
            name = method_name(prefix)
            if kind in methods.get(name, MethodResult()).prefixes:
                name = prefix
            result = methods.setdefault(name, MethodResult())
            result.prefixes[kind] = prefix
            for metric, (metric_kind, _, _) in ENERGY_METRICS.items():
                if metric_kind == kind:
                    result.curves[metric] = _curve(entry.get("bins", []), metric)
                    result.overall[metric] = entry.get("overall", {}).get(metric)
            if entry.get("roc", {}).get("fpr"):
                result.roc = entry["roc"]
    return methods


def _reference_triple(metrics):
    refs = (metrics.get("references") or {}).get("stereo", {})
    return {"gammaness": refs.get(PARTICLE_TYPE_KEY), "energy": refs.get("energy"), "geometry": refs.get("geometry")}


def _binned_methods(entry, value, low="energy_min_tev", high="energy_max_tev"):
    """``{method: Curve}`` of a per-method entry (sensitivity, effective area) of metrics.json."""
    curves = {}
    for method in (entry or {}).get("methods", {}).values():
        bins = method.get("bins", [])
        curves[triple_name(method.get("reconstructors", {}))] = Curve(
            low=[b[low] for b in bins], high=[b[high] for b in bins], values=[b.get(value) for b in bins]
        )
    return curves


def observation_names(metrics):
    """``{benchmark method name: board method}``: the benchmark names its reference triple
    ``reference`` in the sensitivity and the detection; the board names it by its prefixes."""
    named = {name: triple_name(m.get("reconstructors", {}))
             for name, m in (metrics.get("sensitivity") or {}).get("methods", {}).items()}
    named.setdefault("reference", triple_name(_reference_triple(metrics)) or "reference")
    return named


def _observation(metrics):
    """``{method: {kind of cuts: row}}`` of the simulated (or observed) source detection."""
    named = observation_names(metrics)
    rows = {}
    for row in metrics.get("observation") or []:
        name = named.get(row["method"], row["method"])
        rows.setdefault(name, {})[row["cuts"]] = row
    return rows


def run_metrics(metrics, level="stereo"):
    """`RunMetrics` of a ``metrics.json`` document (or of one computed from DL2); ``level``
    falls back to the other one where the run has none."""
    if not metrics:
        return RunMetrics()
    chosen = _level(metrics, level)
    references = (metrics.get("references") or {}).get(chosen, {}) if chosen else {}
    return RunMetrics(
        level=chosen,
        methods=_methods(metrics[chosen], references) if chosen else {},
        sensitivity=_binned_methods(metrics.get("sensitivity"), "energy_flux_sensitivity_erg_per_s_cm2",
                                    "reco_energy_min_tev", "reco_energy_max_tev"),
        effective_area=_binned_methods(metrics.get("effective_area"), "effective_area_m2"),
        observation=_observation(metrics),
        gamma_efficiency=metrics.get("gamma_efficiency"),
    )


def value_at(curve, energy_tev):
    """The value of the bin holding ``energy_tev`` (None outside the bins or unmeasured)."""
    if curve is None:
        return None
    for low, high, value in zip(curve.low, curve.high, curve.values, strict=True):
        if low <= energy_tev < high:
            return value
    return None
