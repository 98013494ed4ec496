"""The settings of each run, flattened to dotted keys, and those that differ between runs.

Training settings come from ``report.json`` (the tool's configuration, recorded there),
benchmark settings from the header of ``metrics.json``. Settings that always differ
between runs without meaning anything (output paths, logging) are left out.
"""

import json

__all__ = ["IGNORED_KEYS", "flatten", "run_settings", "differences"]

#: configuration keys that name where a run wrote or how it logged, not what it did
IGNORED_KEYS = frozenset({
    "output_path", "provenance_log", "cache_dir", "config_files", "log_config", "log_datefmt", "log_file",
    "log_file_level", "log_format", "log_level", "logging_config", "quiet", "show_config", "show_config_json",
    "overwrite", "progress_bar", "resume",
})
_BENCHMARK_KEYS = ("quality_criteria", "gamma_efficiency", "background_ids", "min_events", "energy_bins_tev")


def flatten(value, prefix=""):
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    if not isinstance(value, dict) or not value:
        return {prefix: value} if prefix else {}
    flat = {}
    for key, item in value.items():
        if key in IGNORED_KEYS:
            continue
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _bins_text(edges):
    if not edges:
        return None
    return f"{len(edges) - 1} bins, {edges[0]:.3g} to {edges[-1]:.3g} TeV"


def run_settings(run):
    """``{dotted key: value}`` of one run: ``train.*`` and ``benchmark.*``."""
    settings = {}
    report = run.report
    if report:
        training = report.get("training", {})
        settings.update(flatten(training.get("config", {}), "train"))
        settings["train.preset"] = training.get("preset")
        settings["train.n_input_files"] = len(training.get("inputs", []))
        settings["train.telescope_type"] = report.get("telescope_type")
        settings["train.device"] = training.get("device")
    metrics = run.metrics
    if metrics:
        for key in _BENCHMARK_KEYS:
            if key in metrics:
                value = _bins_text(metrics[key]) if key == "energy_bins_tev" else metrics[key]
                settings[f"benchmark.{key}"] = value
        settings["benchmark.n_input_files"] = len(metrics.get("input_files", []))
    return settings


def _same(values):
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) <= 1


def differences(settings):
    """``{key: {run name: value}}`` of the keys whose values differ among the runs that have
    them (a key only some runs have, with one value, is not a difference), sorted by key."""
    keys = sorted({key for values in settings.values() for key in values})
    differing = {}
    for key in keys:
        present = {name: values[key] for name, values in settings.items() if key in values}
        if len(present) > 1 and not _same(present.values()):
            differing[key] = present
    return differing
