"""Atomic training checkpoints (format in docs/architecture.md) and RNG state.

A checkpoint is written to a temporary file in the same folder and renamed,
so a run killed at any moment leaves either the previous or the new one.
"""

import random
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("model_state", "model_config", "lattice", "telescope_type", "training")


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict, path):
    """``torch.save`` ``state`` to ``path`` atomically."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise KeyError(f"checkpoint lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    # our own files: they hold numpy arrays (lattice, RNG), so not weights_only
    return torch.load(Path(path), map_location=map_location, weights_only=False)
