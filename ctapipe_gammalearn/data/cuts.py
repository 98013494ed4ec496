"""Event selection before training: which telescope events are worth learning from."""

import numpy as np
from ctapipe.core.qualityquery import QualityQuery
from ctapipe.core.traits import List, Tuple, Unicode

__all__ = ["TrainingQualityQuery", "DEFAULT_QUALITY_CRITERIA"]

#: GammaLearn's LST-1 defaults: enough light, and not truncated at the camera edge
DEFAULT_QUALITY_CRITERIA = [
    ("enough light", "hillas_intensity > 50"),
    ("not truncated", "leakage_intensity_width_2 < 0.2"),
]


class TrainingQualityQuery(QualityQuery):
    """Quality cuts on DL1 parameter columns (``hillas_intensity``, ``leakage_*``, ...)."""

    quality_criteria = List(
        Tuple(Unicode(), Unicode()),
        default_value=DEFAULT_QUALITY_CRITERIA,
        help=(
            "list of ('description', 'expression') on the DL1 telescope table columns; "
            "an event is kept when every expression is true"
        ),
    ).tag(config=True)

    def mask(self, table) -> np.ndarray:
        """Boolean mask of rows passing every criterion; NaN parameters fail."""
        if len(self.quality_criteria) == 0:
            return np.ones(len(table), dtype=bool)
        with np.errstate(invalid="ignore"):
            return np.asarray(self.get_table_mask(table), dtype=bool)

    def criteria_key(self) -> str:
        """Stable text of the criteria, part of the cache key."""
        return ";".join(f"{name}:{expr}" for name, expr in self.quality_criteria)
