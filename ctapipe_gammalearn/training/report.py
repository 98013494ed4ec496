"""report.json of a training run, written atomically."""

import json
import math
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

__all__ = ["write_json", "jsonable"]


def jsonable(value):
    """Plain JSON types; NaN/inf become null (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(data, path):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(jsonable(data), indent=1))
