"""A trained (or untrained) γ-PhysNet -> ONNX + TorchScript files carrying the model card.

Both files embed the `~ctapipe_gammalearn.modelcard.ModelCard`; after export the
ONNX file is run with onnxruntime and compared to torch, and the files are
removed again if they disagree.
"""

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..atomic import atomic_path
from ..modelcard import CARD_KEY, INPUT_NAMES, OUTPUT_NAMES, ModelCard

__all__ = [
    "ExportError",
    "PARITY_TOLERANCE",
    "ONNX_IR_VERSION",
    "export_model",
    "export_checkpoint",
    "output_paths",
    "example_inputs",
    "make_card",
    "check_parity",
]

#: largest accepted onnxruntime-vs-torch difference, relative to the output scale
PARITY_TOLERANCE = 1e-4
#: IR 8 is what opset 17 was released with; read by onnxruntime >= 1.13
ONNX_IR_VERSION = 8


class ExportError(RuntimeError):
    """Export failed (e.g. the ONNX file does not reproduce torch)."""


def output_paths(output_stem):
    """(onnx, torchscript) paths for an output stem ``dir/name`` (suffix ignored)."""
    stem = Path(output_stem)
    if stem.suffix in {".onnx", ".pt"}:
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".onnx"), stem.with_name(stem.name + ".pt")


def example_inputs(n_pixels, batch=8, seed=0):
    """Realistic raw DL1: noise everywhere, a bright elongated blob, a few NaN pixels."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 1.5, (batch, n_pixels))
    peak_time = rng.uniform(5.0, 25.0, (batch, n_pixels))
    for row in range(batch):
        start = rng.integers(0, max(n_pixels - 40, 1))
        width = min(40, n_pixels)
        image[row, start : start + width] += rng.gamma(2.0, 10.0 * (row + 1), width)
        peak_time[row, start : start + width] = 10.0 + np.linspace(0.0, 5.0, width)[: n_pixels - start]
    image[:, :: max(n_pixels // 3, 1)] = np.nan  # broken pixels
    return image.astype(np.float32), peak_time.astype(np.float32)


def make_card(model, lattice, telescope_type, training=None, trained=None):
    """The card of a network for a camera lattice."""
    config = dict(getattr(model, "config", {}) or {})
    n_pixels = getattr(lattice, "n_pixels", None)
    if n_pixels is None:
        n_pixels = len(lattice.pix_id) if hasattr(lattice, "pix_id") else None
    return ModelCard(
        telescope_type=str(telescope_type),
        camera_name=str(lattice.camera_name),
        geometry_fingerprint=str(lattice.fingerprint),
        n_pixels=int(n_pixels),
        preset=str(config.get("preset", "custom")),
        package_version=__version__,
        trained=bool(training) if trained is None else bool(trained),
        training=dict(training or {}),
    )


def _export_onnx(model, inputs, card, opset):
    import onnx

    buffer = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    with warnings.catch_warnings():
        # the TorchScript-based exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            buffer,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.ir_version = min(proto.ir_version, ONNX_IR_VERSION)
    entry = proto.metadata_props.add()
    entry.key = CARD_KEY
    entry.value = card.to_json()
    proto.producer_name = "ctapipe_gammalearn"
    proto.producer_version = __version__
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _export_torchscript(model, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.script(model)
        except Exception:  # noqa: BLE001 - not scriptable: trace instead
            return torch.jit.trace(model, inputs, check_trace=False)


def _save_torchscript(scripted, path, card):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # jit.save is deprecated
        torch.jit.save(scripted, str(path), _extra_files={CARD_KEY + ".json": card.to_json()})


def _max_rel_diff(reference, other):
    worst = 0.0
    for ref, got in zip(reference, other):
        ref = np.asarray(ref, dtype=np.float64)
        got = np.asarray(got, dtype=np.float64)
        if ref.shape != got.shape:
            return np.inf
        if not np.array_equal(np.isfinite(ref), np.isfinite(got)):
            return np.inf
        finite = np.isfinite(ref)
        if not finite.any():
            continue
        scale = max(np.abs(ref[finite]).max(), 1e-6)
        worst = max(worst, np.abs(ref[finite] - got[finite]).max() / scale)
    return float(worst)


def export_model(
    model,
    lattice,
    telescope_type,
    output_stem,
    training=None,
    opset=17,
    overwrite=False,
    trained=None,
):
    """Write ``<stem>.onnx`` and ``<stem>.pt`` with the model card, check parity.

    Parameters
    ----------
    model : torch.nn.Module
        ``forward(image, peak_time)`` returning the outputs of the model card contract
    lattice : ctapipe_gammalearn.lattice.Lattice
        camera lattice (``camera_name``, ``fingerprint``, ``n_pixels``)
    telescope_type : str
        ``str(TelescopeDescription)``, e.g. ``"LST_LST_LSTCam"``
    output_stem : str or Path
        ``dir/name``; ``.onnx`` and ``.pt`` are appended
    training : dict or None
        training provenance stored in the card (makes ``card.trained`` True)

    Returns
    -------
    dict(onnx=Path, torchscript=Path, max_rel_diff=float, card=ModelCard)
    """
    onnx_path, ts_path = output_paths(output_stem)
    for path in (onnx_path, ts_path):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: exists, use overwrite (--overwrite) to replace it")
    onnx_path.parent.mkdir(parents=True, exist_ok=True)

    card = make_card(model, lattice, telescope_type, training=training, trained=trained)
    was_training = model.training
    model = model.eval().to("cpu")
    image, peak_time = example_inputs(card.n_pixels, batch=2)
    inputs = (torch.from_numpy(image), torch.from_numpy(peak_time))

    # both files appear together, and neither when the parity check fails
    try:
        with atomic_path(onnx_path) as tmp_onnx, atomic_path(ts_path) as tmp_ts, torch.no_grad():
            tmp_onnx.write_bytes(_export_onnx(model, inputs, card, opset))
            _save_torchscript(_export_torchscript(model, inputs), tmp_ts, card)
            max_rel_diff = check_parity(model, tmp_onnx, card.n_pixels)
            if not max_rel_diff <= PARITY_TOLERANCE:
                raise ExportError(
                    f"{onnx_path}: exported model differs from torch by {max_rel_diff:.3g} "
                    f"(relative, tolerance {PARITY_TOLERANCE:g}); outputs removed"
                )
    finally:
        model.train(was_training)
    return dict(onnx=onnx_path, torchscript=ts_path, max_rel_diff=max_rel_diff, card=card)


def check_parity(model, onnx_path, n_pixels, batch=3, seed=1):
    """Largest relative difference of the ONNX file (onnxruntime, CPU) vs eager torch."""
    from ..runtime import OnnxRuntime

    # another batch size than the export example: checks the dynamic batch axis
    image, peak_time = example_inputs(n_pixels, batch=batch, seed=seed)
    with torch.no_grad():
        reference = [o.numpy() for o in model(torch.from_numpy(image), torch.from_numpy(peak_time))]
    got = OnnxRuntime(onnx_path, providers=["CPUExecutionProvider"]).predict(image, peak_time)
    return _max_rel_diff(reference, [got[name] for name in OUTPUT_NAMES])


def export_checkpoint(checkpoint_path, output_stem, opset=17, overwrite=False):
    """Export a training checkpoint (see docs/architecture.md) to ONNX + TorchScript."""
    from ..lattice import Lattice
    from ..training.checkpoint import EXPORT_KEYS, CheckpointError, Keys, load_checkpoint
    from .physnet import GammaPhysNet

    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"{checkpoint_path}: checkpoint not found")
    try:
        checkpoint = load_checkpoint(checkpoint_path)
    except CheckpointError as err:
        raise ExportError(str(err)) from None
    missing = set(EXPORT_KEYS) - set(checkpoint)
    if missing:
        raise ExportError(f"{checkpoint_path}: checkpoint lacks {sorted(missing)}")
    lattice = Lattice.from_dict(checkpoint[Keys.LATTICE])
    model = GammaPhysNet(lattice, **checkpoint[Keys.MODEL_CONFIG])
    model.load_state_dict(checkpoint[Keys.MODEL_STATE])
    training = dict(checkpoint.get(Keys.TRAINING) or {})
    training.setdefault("checkpoint", str(checkpoint_path.resolve()))
    return export_model(
        model,
        lattice,
        checkpoint[Keys.TELESCOPE_TYPE],
        output_stem,
        training=training,
        opset=opset,
        overwrite=overwrite,
        trained=True,
    )
