"""Per-energy-bin benchmarks of DL2 reconstructors (pyirf, scikit-learn); plots in `.plots`,
the point-source sensitivity (ctapipe.irf) in `.sensitivity`, the report folder in `.writer`
(those two import matplotlib and ctapipe.irf, hence not here). Source detection: the
statistics in `.detection`, per method of the benchmark's inputs (simulated or observed
runs) in `.observation`, pseudo-observed runs in `.pseudo`, DL3 event lists in `.dl3`."""

from .events import (
    DEFAULT_QUALITY_CRITERIA,
    TEL_TYPE_COLUMN,
    BenchmarkInputError,
    BenchmarkQualityQuery,
    find_reconstructors,
    load_events,
    reconstructor_events,
    select_events,
)
from .metrics import angular_benchmark, classification_benchmark, energy_benchmark, energy_bins, roc
from .report import BY_TYPE, benchmark_all, choose_references, format_tables, telescope_types, to_json

__all__ = [
    "BY_TYPE",
    "DEFAULT_QUALITY_CRITERIA",
    "TEL_TYPE_COLUMN",
    "BenchmarkInputError",
    "BenchmarkQualityQuery",
    "angular_benchmark",
    "benchmark_all",
    "choose_references",
    "classification_benchmark",
    "energy_benchmark",
    "energy_bins",
    "find_reconstructors",
    "format_tables",
    "load_events",
    "reconstructor_events",
    "roc",
    "select_events",
    "telescope_types",
    "to_json",
]
