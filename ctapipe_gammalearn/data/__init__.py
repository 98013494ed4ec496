"""DL1 files -> memory-mapped training cache: inputs, labels, cuts, split. Torch-free; the
torch batch streams over the cache live in `ctapipe_gammalearn.training`."""

from .cache import EventCache, build_cache
from .cuts import DEFAULT_QUALITY_CRITERIA, TrainingQualityQuery
from .inputs import DL1InputError, InputFile, check_inputs
from .labels import compute_labels
from .split import balance_classes, class_weights, split_groups

__all__ = [
    "DEFAULT_QUALITY_CRITERIA",
    "DL1InputError",
    "EventCache",
    "InputFile",
    "TrainingQualityQuery",
    "balance_classes",
    "build_cache",
    "check_inputs",
    "class_weights",
    "compute_labels",
    "split_groups",
]
