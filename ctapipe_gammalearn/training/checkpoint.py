"""Training checkpoints: names, keys, safe storage and RNG state (format in docs/architecture.md).

A checkpoint is written to a temporary file in the same folder and renamed,
so a run killed at any moment leaves either the previous or the new one.

Checkpoints hold tensors and plain containers only, and are read with
``torch.load(weights_only=True)``: a checkpoint from someone else cannot run
code when it is loaded. numpy arrays (the lattice, numpy's RNG state) are
stored as tensors and turned back into arrays on loading.
"""

import random
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path

__all__ = [
    "CHECKPOINT_LAST",
    "CHECKPOINT_BEST",
    "Keys",
    "REQUIRED_KEYS",
    "EXPORT_KEYS",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "upgrade_checkpoint",
    "rng_state",
    "set_rng_state",
]

#: written after every epoch, read by ``--resume``
CHECKPOINT_LAST = "checkpoint_last.pt"
#: the epoch with the lowest validation loss so far, exported at the end
CHECKPOINT_BEST = "checkpoint_best.pt"


class Keys:
    """Names of the entries of a checkpoint dict."""

    MODEL_STATE = "model_state"
    MODEL_CONFIG = "model_config"
    LATTICE = "lattice"
    TELESCOPE_TYPE = "telescope_type"
    TRAINING = "training"
    OPTIMIZER_STATE = "optimizer_state"
    SCHEDULER_STATE = "scheduler_state"
    BALANCER_STATE = "balancer_state"
    SCALER_STATE = "scaler_state"
    EPOCH = "epoch"
    GLOBAL_STEP = "global_step"
    BEST_VAL_LOSS = "best_val_loss"
    BEST_EPOCH = "best_epoch"
    EPOCHS_SINCE_BEST = "epochs_since_best"
    STOPPED_EARLY = "stopped_early"
    HISTORY = "history"
    RNG_STATE = "rng_state"
    INITIAL_VALIDATION = "initial_validation"
    #: states of the trainer's extra loss terms that are modules (the domain head and its schedule)
    EXTRA_STATE = "extra_terms_state"


#: every checkpoint has these
REQUIRED_KEYS = (Keys.MODEL_STATE, Keys.MODEL_CONFIG, Keys.LATTICE, Keys.TELESCOPE_TYPE, Keys.TRAINING)
#: what exporting a checkpoint to ONNX + TorchScript needs
EXPORT_KEYS = (Keys.MODEL_STATE, Keys.MODEL_CONFIG, Keys.LATTICE, Keys.TELESCOPE_TYPE)

_PLAIN = (str, bytes, bool, int, float, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)
_UPGRADE_HINT = "python -m ctapipe_gammalearn.training.upgrade"


class CheckpointError(ValueError):
    """A checkpoint cannot be read safely (unreadable, unsafe or of an older format)."""


# -- RNG state ------------------------------------------------------------------------


def rng_state() -> dict:
    """python, numpy, torch (and CUDA) RNG states, in plain types."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    random.setstate(_python_rng_state(state["python"]))
    np.random.set_state(_numpy_rng_state(state["numpy"]))
    torch.set_rng_state(state["torch"].cpu())  # a checkpoint loaded onto a GPU has its tensors there
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _python_rng_state(state):
    version, internal, gauss = state
    return int(version), tuple(int(v) for v in internal), gauss


def _numpy_rng_state(state):
    if isinstance(state, tuple):  # the legacy tuple of an upgraded checkpoint
        name, key, *rest = state
        return (name, _as_numpy(key).astype(np.uint32), *rest)
    state = dict(state, state=dict(state["state"]))
    state["state"]["key"] = _as_numpy(state["state"]["key"]).astype(np.uint32)
    return state


# -- plain storage ----------------------------------------------------------------------


def _as_numpy(value):
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _to_plain(value, where="checkpoint"):
    """Tensors and plain containers only: what ``weights_only=True`` reads back."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value).copy())
    if isinstance(value, np.generic):  # before the plain types: np.float64 is a float
        return value.item()
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, OrderedDict):  # state dicts
        return OrderedDict((k, _to_plain(v, f"{where}[{k!r}]")) for k, v in value.items())
    if isinstance(value, dict):
        return {k: _to_plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if type(value) in (list, tuple):  # not named tuples: they unpickle through their class
        return type(value)(_to_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored in a checkpoint")


def _lattice_from_plain(lattice: dict) -> dict:
    """The arrays `Lattice.from_dict` expects, from stored tensors."""
    return {k: _as_numpy(v) if isinstance(v, torch.Tensor) else v for k, v in lattice.items()}


def save_checkpoint(state: dict, path):
    """``torch.save`` ``state`` to ``path`` atomically, numpy arrays stored as tensors."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise KeyError(f"checkpoint lacks {missing}")
    plain = _to_plain(state)
    with atomic_path(path) as tmp:
        torch.save(plain, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint without running any code from it; raises `CheckpointError`."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure: one line naming the file
        raise CheckpointError(_refusal(path, err)) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a checkpoint dict")
    if isinstance(checkpoint.get(Keys.LATTICE), dict):
        checkpoint[Keys.LATTICE] = _lattice_from_plain(checkpoint[Keys.LATTICE])
    return checkpoint


def _refusal(path, err):
    """Why ``path`` cannot be read, in one line: older format, unsafe content or not a checkpoint."""
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not even a torch zip file
        return f"{path}: not a readable checkpoint (not a file written by torch.save)"
    if unsafe and all(name.startswith("numpy.") for name in unsafe):
        return (
            f"{path}: written by an older ctapipe_gammalearn version (numpy objects in the checkpoint); "
            f"if you trust its origin, convert it once with '{_UPGRADE_HINT} {path}', or train afresh"
        )
    if unsafe:
        return (
            f"{path}: refusing to load a checkpoint holding objects other than tensors and plain data "
            f"({', '.join(unsafe)}): loading it could run code"
        )
    return f"{path}: not a readable checkpoint ({_first_reason(err)})"


def _first_reason(err):
    """The cause in torch's multi-line error: after its weights_only preamble, if there is one."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    return next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)


def upgrade_checkpoint(path):
    """Rewrite a trusted checkpoint of an older version in the safe format, in place.

    This reads the file with ``weights_only=False``, which runs whatever code it
    holds: only for files of known origin.
    """
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=False)
    if Keys.RNG_STATE in state:
        rng = state[Keys.RNG_STATE]
        state[Keys.RNG_STATE] = dict(rng, numpy=_numpy_rng_state(rng["numpy"]))
    save_checkpoint(state, path)

