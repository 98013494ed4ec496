"""DL1 files -> memory-mapped training cache: labels, cuts, split, augmentation, batches.

Names are imported on first use (PEP 562): the torch-free parts (cuts, labels,
inputs) stay usable where torch is not installed, e.g. by the benchmark.
"""

import importlib

_WHERE = {
    "Augmentation": "augment",
    "BatchStream": "stream",
    "DEFAULT_QUALITY_CRITERIA": "cuts",
    "DL1InputError": "inputs",
    "EventCache": "cache",
    "InputFile": "inputs",
    "TrainingQualityQuery": "cuts",
    "balance_classes": "split",
    "build_cache": "cache",
    "check_inputs": "inputs",
    "class_weights": "split",
    "compute_labels": "labels",
    "split_groups": "split",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__():
    return __all__
