"""Loading an exported γ-PhysNet for inference.

ONNX files run on onnxruntime; TorchScript files (``.pt``) need torch, which
is imported only in that case, so the inference path works without torch.
"""

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
from ctapipe.core.tool import ToolConfigurationError

from .modelcard import CARD_KEY, INPUT_NAMES, OUTPUT_NAMES, ModelCard, ModelCardError

__all__ = [
    "ModelFileError",
    "ModelRuntime",
    "OnnxRuntime",
    "TorchScriptRuntime",
    "load_model",
    "choose_providers",
]

log = logging.getLogger(__name__)

#: onnxruntime severity levels: 0 verbose ... 3 error, 4 fatal
_QUIET = 3
_SILENT = 4
# images per inference call when not given: small batches stay in the CPU's caches (64 runs
# `small` 1.25x and `paper` 1.13x faster than 512 on a 2-core EPYC); a GPU wants large ones
CPU_BATCH_SIZE = 64
GPU_BATCH_SIZE = 1024
TORCHSCRIPT_SUFFIXES = {".pt", ".ts", ".torchscript"}


class ModelFileError(ToolConfigurationError):
    """A model file that cannot be used; the message names the file and the problem."""


class ModelRuntime:
    """A loaded model: ``.card`` and ``.predict(image, peak_time)``."""

    backend = None
    providers = ()

    def __init__(self, path, card):
        self.path = Path(path)
        self.card = card

    def __repr__(self):
        return f"{self.__class__.__name__}({str(self.path)!r}, {self.card.telescope_type})"

    def _run(self, image, peak_time):
        raise NotImplementedError

    @property
    def default_batch_size(self):
        """Images per inference call when ``predict`` is given none: `GPU_BATCH_SIZE` on CUDA,
        else `CPU_BATCH_SIZE`."""
        return GPU_BATCH_SIZE if "CUDAExecutionProvider" in self.providers else CPU_BATCH_SIZE

    def predict(self, image, peak_time, batch_size=None):
        """Network outputs for ``(n, n_pixels)`` images and peak times, ``batch_size`` images
        per inference call (default: `default_batch_size`).

        Returns a dict output name -> array with n rows, in `OUTPUT_NAMES` order.
        """
        image = np.ascontiguousarray(image, dtype=np.float32)
        peak_time = np.ascontiguousarray(peak_time, dtype=np.float32)
        if image.ndim != 2 or image.shape != peak_time.shape:
            raise ValueError(
                f"image and peak_time must both be (n, n_pixels), got {image.shape} and {peak_time.shape}"
            )
        if image.shape[1] != self.card.n_pixels:
            raise ValueError(
                f"{self.path}: model expects {self.card.n_pixels} pixels, got {image.shape[1]}"
            )
        n = len(image)
        if n == 0:
            return {name: np.empty((0, *self._trailing(name)), np.float32) for name in OUTPUT_NAMES}
        batch_size = max(int(batch_size or self.default_batch_size), 1)
        chunks = [
            self._run(image[start : start + batch_size], peak_time[start : start + batch_size])
            for start in range(0, n, batch_size)
        ]
        return {
            name: np.concatenate([chunk[i] for chunk in chunks]) for i, name in enumerate(OUTPUT_NAMES)
        }

    def _trailing(self, name):
        shape = self.card.outputs[name]["shape"][1:]
        return tuple(len(self.card.class_names) if s == "n_classes" else s for s in shape)


def _check_card(path, text):
    if text is None:
        raise ModelFileError(f"{path}: no model card ({CARD_KEY}); not a ctapipe_gammalearn export")
    try:
        return ModelCard.from_json(text, source=str(path))
    except (ModelCardError, TypeError) as err:
        raise ModelFileError(f"{path}: invalid model card: {err}") from None


@contextlib.contextmanager
def _onnxruntime_quiet(ort):
    """Silence onnxruntime's default logger (e.g. CUDA load errors) for a trial."""
    ort.set_default_logger_severity(_SILENT)
    try:
        yield
    finally:
        ort.set_default_logger_severity(_QUIET)


_cuda_works = {}  # per process: a failed CUDA start is not retried for every model


def choose_providers(model_bytes, preferred=None):
    """Execution providers that really initialise for this model.

    CUDA is used when onnxruntime lists it and a session on it actually
    starts; onnxruntime-gpu without CUDA libraries falls back to CPU quietly.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if preferred:
        return [p for p in preferred if p in available] or ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available and _cuda_works.get("ok", True):
        options = ort.SessionOptions()
        options.log_severity_level = _SILENT
        with _onnxruntime_quiet(ort):
            try:
                trial = ort.InferenceSession(
                    model_bytes, options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
                )
                _cuda_works["ok"] = "CUDAExecutionProvider" in trial.get_providers()
            except Exception:  # noqa: BLE001 - e.g. a corrupt file: the CPU session will say so
                pass
        if _cuda_works.get("ok"):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntime(ModelRuntime):
    backend = "onnxruntime"

    def __init__(self, path, providers=None, n_threads=None, spin_threads=False):
        import onnxruntime as ort

        path = Path(path)
        model_bytes = path.read_bytes()
        chosen = choose_providers(model_bytes, providers)
        options = ort.SessionOptions()
        options.log_severity_level = _QUIET
        # busy-waiting threads answer faster (about 10 % more images/s in batches on 2 cores)
        # but hold the cores between calls, which an event loop needs for its own work
        spin = "1" if spin_threads else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        if n_threads:
            options.intra_op_num_threads = int(n_threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=chosen)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises several types
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelFileError(f"{path}: not a readable ONNX model ({first_line})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        super().__init__(path, _check_card(path, meta.get(CARD_KEY)))
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if not set(INPUT_NAMES) <= inputs or not set(OUTPUT_NAMES) <= set(outputs):
            raise ModelFileError(
                f"{path}: inputs {sorted(inputs)} / outputs {outputs} do not match the model card contract"
            )
        self.providers = self.session.get_providers()

    def _run(self, image, peak_time):
        return self.session.run(list(OUTPUT_NAMES), {"image": image, "peak_time": peak_time})


class TorchScriptRuntime(ModelRuntime):
    backend = "torchscript"

    def __init__(self, path, n_threads=None):
        import torch  # only TorchScript files need torch

        path = Path(path)
        extra = {CARD_KEY + ".json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # jit.load is deprecated
                self.module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as err:  # noqa: BLE001
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelFileError(f"{path}: not a readable TorchScript model ({first_line})") from None
        self.module.eval()
        text = extra[CARD_KEY + ".json"]
        if isinstance(text, bytes):
            text = text.decode()
        super().__init__(path, _check_card(path, text or None))
        if n_threads:
            torch.set_num_threads(int(n_threads))
        self.providers = ["torch-cpu"]
        self._torch = torch

    def _run(self, image, peak_time):
        torch = self._torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(image), torch.from_numpy(peak_time))
        return [o.numpy() for o in out]


def load_model(path, providers=None, n_threads=None, spin_threads=False) -> ModelRuntime:
    """Load an exported model (``.onnx`` or TorchScript ``.pt``) for inference.

    ``spin_threads``: onnxruntime's threads busy-wait between operators (for batched
    inference with nothing else running; ignored by TorchScript).

    Raises `ModelFileError` (a one-line message naming the file) when the file
    is missing, unreadable, or carries no valid model card.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if path.suffix in TORCHSCRIPT_SUFFIXES:
        return TorchScriptRuntime(path, n_threads=n_threads)
    return OnnxRuntime(path, providers=providers, n_threads=n_threads, spin_threads=spin_threads)
