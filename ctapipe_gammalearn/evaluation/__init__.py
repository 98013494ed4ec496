"""Per-energy-bin benchmarks of DL2 reconstructors (pyirf, scikit-learn); plots in `.plots`."""

from .events import (
    DEFAULT_QUALITY_CRITERIA,
    BenchmarkInputError,
    BenchmarkQualityQuery,
    find_reconstructors,
    load_events,
    reconstructor_events,
    select_events,
)
from .metrics import angular_benchmark, classification_benchmark, energy_benchmark, energy_bins, roc
from .report import benchmark_all, choose_references, format_tables, to_json

__all__ = [
    "DEFAULT_QUALITY_CRITERIA",
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
    "to_json",
]
