"""``ctapipe-train-gammalearn``: train γ-PhysNet on simulated DL1 files with images."""

import glob
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import Bool, CaselessStrEnum, Dict, Float, Int, List, Unicode, flag
from ctapipe.core.traits import Path as PathTrait

from ..data import (
    DL1InputError,
    InputFile,
    TrainingQualityQuery,
    balance_classes,
    build_cache,
    class_weights,
    split_groups,
)
from ..data.inputs import check_inputs, check_target_inputs
from ..modelcard import CLASS_NAMES
from ..presets import PRESET_NAMES
from .base import GammaLearnTool
from .launch import LAUNCH_HELP, launch, split_launch_args, wants_launch

__all__ = ["TrainGammaPhysNet", "main"]


def _expand(patterns, what):
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not matches:
            raise DL1InputError(f"{pattern}: no such {what} file")
        paths.extend(matches)
    return paths


class TrainGammaPhysNet(GammaLearnTool):
    """Train γ-PhysNet for one telescope type from signal (gamma) and background (proton) DL1 files.

    The DL1 images are cached once as memory-mapped arrays; each epoch writes
    an atomic checkpoint (``--resume`` continues from it); at the end the best
    model (validation loss) is exported to ONNX + TorchScript, with
    ``report.json`` and PNG plots of the losses and validation performance.
    ``--target`` with ``--domain-adaptation`` adds unlabelled target-domain files (observed
    runs) as one more balanced task; ``--nsb-match`` gives the training images the pixel
    noise of other files (docs/domain_adaptation.md).
    """

    name = "ctapipe-train-gammalearn"
    description = __doc__
    examples = """
    ctapipe-train-gammalearn --signal 'gamma_*.dl1.h5' --background 'proton_*.dl1.h5' \\
        --output-dir run1 --epochs 20 --preset small --seed 1
    ctapipe-train-gammalearn --nproc-per-node 4 --signal ... --output-dir run1
    ctapipe-train-gammalearn --signal ... --background ... --target 'run_*.dl1.h5' --domain-adaptation dann \
        --output-dir run_dann
    torchrun --nproc-per-node 4 $(which ctapipe-train-gammalearn) --TrainGammaPhysNet.signal=... --output-dir run1
    """ + LAUNCH_HELP

    signal = List(Unicode(), default_value=[], help="gamma DL1 files with images (glob patterns allowed)").tag(
        config=True
    )
    background = List(Unicode(), default_value=[], help="proton DL1 files with images (glob patterns allowed)").tag(
        config=True
    )
    output_path = PathTrait(
        default_value=None, allow_none=True, help="directory for checkpoints, model and report"
    ).tag(config=True)
    cache_dir = PathTrait(
        default_value=None, allow_none=True, help="DL1 cache directory (default: OUTPUT_DIR/cache)"
    ).tag(config=True)
    telescope_type = Unicode(
        default_value=None, allow_none=True, help="str(TelescopeDescription) to train; default: the only one present"
    ).tag(config=True)
    preset = CaselessStrEnum(PRESET_NAMES, default_value="small", help="γ-PhysNet size preset").tag(config=True)
    model_options = Dict(default_value={}, help="overrides of the preset, e.g. {'channels': [4, 8]}").tag(config=True)
    epochs = Int(10, help="number of epochs (including resumed ones)").tag(config=True)
    batch_size = Int(64, help="images per batch and process").tag(config=True)
    learning_rate = Float(2e-3, help="peak AdamW learning rate").tag(config=True)
    weight_decay = Float(1e-4, help="AdamW weight decay").tag(config=True)
    lr_schedule = CaselessStrEnum(["cosine", "constant"], default_value="cosine", help="per-step LR schedule").tag(
        config=True
    )
    warmup_epochs = Float(0.5, help="linear warm-up length of the cosine schedule").tag(config=True)
    grad_clip = Float(5.0, help="max gradient norm (0: off)").tag(config=True)
    patience = Int(0, help="stop after this many epochs without a better validation loss (0: never)").tag(config=True)
    seed = Int(0, help="seed of model init, split, data order and augmentation").tag(config=True)
    validation_fraction = Float(0.2, help="fraction of files (or observations) kept for validation").tag(config=True)
    split_by = CaselessStrEnum(["file", "obs"], default_value="file", help="validation split unit").tag(config=True)
    class_balance = CaselessStrEnum(
        ["none", "weights", "undersample"],
        default_value="weights",
        help="inverse-frequency loss weights or undersampling",
    ).tag(config=True)
    regression_loss = CaselessStrEnum(
        ["laplace_nll", "l1_laplace", "gaussian_nll", "l1"], default_value="l1_laplace", help="regression loss"
    ).tag(config=True)
    conditional = Bool(True, help="regressions on gammas only").tag(config=True)
    task_balancing = CaselessStrEnum(
        ["fixed", "uncertainty", "gradnorm"], default_value="uncertainty", help="how task losses are combined"
    ).tag(config=True)
    task_weights = Dict(default_value={}, help="fixed weights per task (particle, energy, direction, impact)").tag(
        config=True
    )
    nsb_pe = Float(0.0, help="Poisson NSB injection: mean extra p.e. per pixel (0: off)").tag(config=True)
    time_jitter_ns = Float(0.0, help="peak-time Gaussian jitter in ns (0: off)").tag(config=True)
    device = CaselessStrEnum(["auto", "cpu", "cuda"], default_value="auto", help="auto: CUDA when present").tag(
        config=True
    )
    amp = CaselessStrEnum(
        ["auto", "off", "bf16", "fp16"], default_value="auto",
        help="mixed precision: on a GPU bf16 where supported (auto) or fp16; on CPU only bf16 when asked",
    ).tag(config=True)
    compile = Bool(False, help="torch.compile the model").tag(config=True)
    chunk_size = Int(1000, help="subarray events per chunk when building the cache").tag(config=True)
    pixel_dtype = CaselessStrEnum(["float16", "float32"], default_value="float16", help="cached image dtype").tag(
        config=True
    )
    tensorboard = Bool(True, help="write TensorBoard scalars to OUTPUT_DIR/tensorboard").tag(config=True)
    progress_bar = Bool(True, help="show progress bars").tag(config=True)
    resume = Bool(False, help="continue from the last checkpoint in OUTPUT_DIR").tag(config=True)
    target = List(
        Unicode(), default_value=[], help="unlabelled target-domain DL1 files with images; their labels are never read"
    ).tag(config=True)
    domain_adaptation = CaselessStrEnum(
        ["none", "dann", "cdann", "coral", "dan", "deepjdot"], default_value="none",
        help="domain adaptation to the --target files: one more balanced task (docs/domain_adaptation.md)",
    ).tag(config=True)
    domain_gamma = Float(10.0, help="gamma of Ganin's gradient-reversal schedule 2/(1+exp(-gamma p))-1").tag(
        config=True
    )
    domain_max_coefficient = Float(1.0, help="final gradient-reversal coefficient (dann, cdann)").tag(config=True)
    domain_hidden = Int(64, help="hidden units of the domain classifier (dann, cdann)").tag(config=True)
    nsb_match = List(
        Unicode(), default_value=[], help="DL1 files (observed runs) whose pixel noise the training images are given"
    ).tag(config=True)

    aliases = {
        "signal": "TrainGammaPhysNet.signal",
        "background": "TrainGammaPhysNet.background",
        ("o", "output-dir"): "TrainGammaPhysNet.output_path",
        "cache-dir": "TrainGammaPhysNet.cache_dir",
        "telescope-type": "TrainGammaPhysNet.telescope_type",
        "preset": "TrainGammaPhysNet.preset",
        "epochs": "TrainGammaPhysNet.epochs",
        "batch-size": "TrainGammaPhysNet.batch_size",
        "learning-rate": "TrainGammaPhysNet.learning_rate",
        "seed": "TrainGammaPhysNet.seed",
        "device": "TrainGammaPhysNet.device",
        "patience": "TrainGammaPhysNet.patience",
        "task-balancing": "TrainGammaPhysNet.task_balancing",
        "regression-loss": "TrainGammaPhysNet.regression_loss",
        "class-balance": "TrainGammaPhysNet.class_balance",
        "split-by": "TrainGammaPhysNet.split_by",
        "nsb-pe": "TrainGammaPhysNet.nsb_pe",
        "time-jitter-ns": "TrainGammaPhysNet.time_jitter_ns",
        "target": "TrainGammaPhysNet.target",
        "domain-adaptation": "TrainGammaPhysNet.domain_adaptation",
        "nsb-match": "TrainGammaPhysNet.nsb_match",
    }
    flags = {
        **flag("overwrite", "Tool.overwrite", "replace an existing output directory", "keep it"),
        **flag("resume", "TrainGammaPhysNet.resume", "continue from the last checkpoint", "start afresh"),
        **flag("progress", "TrainGammaPhysNet.progress_bar", "show progress bars", "no progress bars"),
        **flag("compile", "TrainGammaPhysNet.compile", "torch.compile the model", "run eagerly"),
    }
    classes = [TrainingQualityQuery]

    # -- setup: inputs, output directory, cache, split -------------------------------
    def setup(self):
        from ..training.distributed import setup_distributed

        if self.output_path is None:
            raise ToolConfigurationError("--output-dir is required")
        if not self.signal or not self.background:
            raise ToolConfigurationError("give at least one --signal and one --background file")
        if self.domain_adaptation != "none" and not self.target:
            raise ToolConfigurationError(f"--domain-adaptation {self.domain_adaptation} needs --target files")
        self.context = setup_distributed(self.device)
        if not self.context.is_main:
            self.provenance_log = Path(os.devnull)  # one provenance log per run, from rank 0
        self.output_path = Path(self.output_path).absolute()
        self.inputs = self._input_files()
        self.targets = self._target_files()
        self.cache = self._cache_on_every_rank(self.inputs)
        self.target_cache = self._cache_on_every_rank(self.targets, labelled=False) if self.targets else None
        for item in self.inputs:
            Provenance().add_input_file(str(item.path), role="DL1 training events")
        for item in self.targets:
            Provenance().add_input_file(str(item.path), role="DL1 target-domain events (unlabelled)")
        for item in self.nsb_files:
            Provenance().add_input_file(str(item.path), role="DL1 events whose noise is matched")
        self._split()

    def _input_files(self):
        inputs = [InputFile(p, CLASS_NAMES.index("gamma")) for p in _expand(self.signal, "signal")]
        return inputs + [InputFile(p, CLASS_NAMES.index("proton")) for p in _expand(self.background, "background")]

    def _target_files(self):
        """The target (and --nsb-match) files, checked against the training files before anything is written."""
        if self.domain_adaptation == "none" and self.target:
            self.log.warning("--target files are not used without --domain-adaptation")
        adapting = self.domain_adaptation != "none"
        targets = [InputFile(p, -1) for p in _expand(self.target, "target")] if adapting else []
        self.nsb_files = [InputFile(p, -1) for p in _expand(self.nsb_match, "--nsb-match")]
        if targets or self.nsb_files:
            telescope_type, _, fingerprint = check_inputs(self.inputs, self.telescope_type)
            check_target_inputs(targets + self.nsb_files, telescope_type, fingerprint)
            self.telescope_type = telescope_type
        return targets

    def _matched_nsb(self):
        """``(extra p.e. per pixel, record)`` of ``--nsb-match`` (None, {} without): rank 0 estimates,
        the source noise on the first signal file."""
        from ..training.nsb_match import match_nsb

        if not self.nsb_files:
            return None, {}
        result, error = None, None
        if self.context.is_main:
            try:
                result = match_nsb([i.path for i in self.nsb_files], [self.inputs[0].path], self.cache.n_pixels)
            except ToolConfigurationError as err:
                error = str(err)
        error = self.context.broadcast_object(error)
        if error is not None:
            raise ToolConfigurationError(error)
        extra, record = self.context.broadcast_object(result)
        self.log.info("matched NSB: target %.3g p.e., source %.3g p.e. per pixel (medians), extra Poisson %.3g p.e.",
                      record["target_pixel_std_pe"]["median"], record["source_pixel_std_pe"]["median"],
                      record["extra_poisson_pe"]["median"])
        return extra, record

    def _cache_on_every_rank(self, inputs, labelled=True):
        """Rank 0 prepares the output and builds the cache; the others then open the finished
        cache under the same key, or raise rank 0's error instead of waiting. Target files
        (``labelled=False``) are cached without labels, after the training files."""
        cache_dir = Path(self.cache_dir) if self.cache_dir is not None else self.output_path / "cache"
        build = dict(
            cache_dir=cache_dir,
            telescope_type=self.telescope_type,
            quality_query=TrainingQualityQuery(parent=self),
            chunk_size=self.chunk_size,
            pixel_dtype=self.pixel_dtype,
            log=self.log,
            labelled=labelled,
        )
        cache, error = None, None
        if self.context.is_main:
            try:
                if labelled:
                    self._prepare_output_dir()
                cache = build_cache(inputs, progress=self.progress_bar, **build)
            except ToolConfigurationError as err:
                error = str(err)
                if not self.context.enabled:
                    raise
        error = self.context.broadcast_object(error)
        if error is not None:
            raise ToolConfigurationError(error)
        if self.context.is_main:
            return cache
        return build_cache(inputs, progress=False, **build)

    def _prepare_output_dir(self):
        out = self.output_path
        existing = [p for p in out.iterdir() if p.name != "cache"] if out.is_dir() else []
        if self.resume:
            out.mkdir(parents=True, exist_ok=True)
            return
        if existing and not self.overwrite:
            raise ToolConfigurationError(
                f"{out}: output directory is not empty, use --overwrite to replace it or --resume to continue"
            )
        for path in existing:  # the cache is keyed by content and stays valid
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        out.mkdir(parents=True, exist_ok=True)

    def _split(self):
        cache = self.cache
        particle = cache["particle"]
        train, val = split_groups(
            cache["file_index"], cache["obs_id"], particle, self.validation_fraction, self.split_by, self.seed
        )
        if self.class_balance == "undersample":
            train = balance_classes(train, particle, self.seed)
        if len(train) == 0:
            raise ToolConfigurationError(f"{cache.path}: no training events after the split")
        present = set(particle[train].tolist())
        if len(present) < 2:
            self.log.warning("training set holds only class %s", [CLASS_NAMES[i] for i in present])
        self.train_indices, self.val_indices = train, val
        self.class_weights = class_weights(particle[train]) if self.class_balance == "weights" else None
        self.log.info("%d training and %d validation events", len(train), len(val))
        if len(val) == 0:
            self.log.warning(
                "no validation set: the split is by %s and no class has two; give at least two "
                "files (or observations) per class to choose the best model and stop early",
                self.split_by,
            )

    # -- start: model, trainer, epochs ------------------------------------------------
    def start(self):
        from ..training.checkpoint import CheckpointError
        from ..training.run import RunConfigurationError, TrainingData, TrainingOptions, TrainingRun

        pixel_nsb_pe, nsb_record = self._matched_nsb()
        data = TrainingData(
            self.cache,
            self.train_indices,
            self.val_indices,
            self._geometry(),
            self.class_weights,
            inputs=tuple(item.path for item in self.inputs),
            pixel_nsb_pe=pixel_nsb_pe,
            nsb_match=nsb_record,
            **self._target_data(),
        )
        try:
            self.training_run = TrainingRun(
                TrainingOptions.from_traits(self),
                data,
                self.output_path,
                context=self.context,
                config=self._recorded_config(),
                log=self.log,
            )
            self.training_run.begin(resume=self.resume)
        except (RunConfigurationError, CheckpointError) as err:
            raise ToolConfigurationError(str(err)) from None
        self.training_run.fit()

    def _geometry(self):
        from ..data.inputs import read_subarray

        subarray = read_subarray(self.inputs[0].path)
        tel_id = subarray.get_tel_ids_for_type(self.cache.telescope_type)[0]
        return subarray.tel[tel_id].camera.geometry

    def _recorded_config(self):
        """The configuration of this run without the (long) input lists, which are recorded apart."""
        config = self.get_current_config()[self.__class__.__name__]
        recorded_apart = ("signal", "background", "target", "nsb_match")
        return {key: value for key, value in config.items() if key not in recorded_apart}

    def _target_data(self):
        """The `TrainingData` fields of the target: cache, rows and provenance (path, size, mtime, events)."""
        if self.target_cache is None:
            return {}
        indices = np.arange(len(self.target_cache))
        return dict(target_cache=self.target_cache, target_indices=indices, target_info=self._target_info())

    def _target_info(self):
        targets = []
        for entry in self.target_cache.meta["files"]:
            stat = Path(entry["path"]).stat()
            targets.append({"path": entry["path"], "n_events": entry["n_events"], "size": stat.st_size,
                            "mtime_ns": stat.st_mtime_ns})
        return {"targets": targets}

    # -- finish: best model, export, report, plots --------------------------------------
    def finish(self):
        if not hasattr(self, "training_run"):
            self.context.close() if hasattr(self, "context") else None
            return
        if self.context.is_main:
            self._record_outputs(self.training_run.write_products())
        self.context.barrier()
        self.context.close()

    @staticmethod
    def _record_outputs(paths):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no ctapipe reference metadata in ONNX, JSON, PNG
            for path in paths:
                Provenance().add_output_file(str(path), role="trained γ-PhysNet")


def _worker(argv):
    """One DDP worker started by `launch`: the tool on the same arguments."""
    try:
        TrainGammaPhysNet().run(argv)
    except SystemExit as done:  # Tool.run always exits
        if done.code not in (0, None):
            raise RuntimeError(f"ctapipe-train-gammalearn worker exited with status {done.code}") from None
    return 0


def main(argv=None):
    options, argv = split_launch_args(sys.argv[1:] if argv is None else argv)
    if not wants_launch(options):
        TrainGammaPhysNet().run(argv)
    try:
        launch(options, _worker, argv)
    except Exception as err:  # the failed worker has logged its own error
        sys.exit(f"ctapipe-train-gammalearn: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


if __name__ == "__main__":
    main()
