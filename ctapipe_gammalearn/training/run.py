"""One training run assembled from plain settings: what ``ctapipe-train-gammalearn`` wires its traits to.

`TrainingRun` builds the network, the multitask loss, the task balancer, the
batch streams, the optimiser and its schedule, TensorBoard and the `Trainer`;
it continues from the last checkpoint on request, and at the end writes the
best model (ONNX + TorchScript), ``report.json`` and the plots.
"""

import dataclasses
from pathlib import Path

import torch

from .. import __version__
from ..lattice import Lattice
from .augment import Augmentation
from .balancing import make_balancer
from .checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, CheckpointError, Keys, load_checkpoint
from .distributed import DistributedContext, choose_device
from .domain import DOMAIN_METHODS, DOMAIN_TASK, DomainAdaptation
from .loop import Trainer
from .losses import TASKS, MultitaskLoss
from .metrics import binned_metrics, summary_metrics
from .report import jsonable
from .setup import amp_dtype, make_optimizer, make_scheduler
from .stream import BatchStream

__all__ = ["TrainingOptions", "TrainingData", "TrainingRun", "RunConfigurationError"]

#: cache metadata copied into report.json
_REPORTED_DATA = ("n_events", "n_read", "n_cut", "n_nan_labels", "files")
_REPORTED_TARGET = ("n_events", "n_read", "n_cut", "files")


class RunConfigurationError(ValueError):
    """The settings cannot make a run (e.g. unknown model options or task names)."""


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """Settings of a run; the field names are the training tool's trait names."""

    preset: str = "small"
    model_options: dict = dataclasses.field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    warmup_epochs: float = 0.5
    grad_clip: float = 5.0
    patience: int = 0
    seed: int = 0
    regression_loss: str = "l1_laplace"
    conditional: bool = True
    task_balancing: str = "uncertainty"
    task_weights: dict = dataclasses.field(default_factory=dict)
    nsb_pe: float = 0.0
    time_jitter_ns: float = 0.0
    device: str = "auto"
    amp: str = "auto"
    compile: bool = False
    tensorboard: bool = True
    progress_bar: bool = True
    domain_adaptation: str = "none"
    domain_gamma: float = 10.0
    domain_max_coefficient: float = 1.0
    domain_hidden: int = 64

    @classmethod
    def from_traits(cls, owner):
        """The options from an object with attributes of the same names (the tool)."""
        return cls(**{field.name: getattr(owner, field.name) for field in dataclasses.fields(cls)})


@dataclasses.dataclass
class TrainingData:
    """The cached events of one telescope type, split, and the camera they come from."""

    cache: object
    train_indices: object
    val_indices: object
    geometry: object
    class_weights: object = None
    inputs: tuple = ()
    #: unlabelled target-domain events (a cache built with ``labelled=False``), for domain adaptation
    target_cache: object = None
    target_indices: object = None
    #: provenance of the target files and of the matched NSB (recorded, not read)
    target_info: dict = dataclasses.field(default_factory=dict)
    #: matched NSB (``--nsb-match``): mean extra Poisson p.e. per pixel, and the estimate behind it
    pixel_nsb_pe: object = None
    nsb_match: dict = dataclasses.field(default_factory=dict)


class TrainingRun:
    """Model, loss, balancer, streams, optimiser, schedule, TensorBoard and trainer of one run.

    Parameters
    ----------
    options : TrainingOptions
    data : TrainingData
    output_dir : Path
        checkpoints, TensorBoard and final products (written by the main process only)
    context : DistributedContext or None
    config : dict
        the tool configuration, recorded in the model card and the report
    log : logging.Logger or None
    """

    def __init__(self, options, data, output_dir, context=None, config=None, log=None):
        self.options, self.data, self.log = options, data, log
        self.output_dir = Path(output_dir)
        self.context = context or DistributedContext()
        torch.manual_seed(options.seed)
        self.device = choose_device(options.device, self.context.local_rank)
        self.lattice = Lattice.from_geometry(data.geometry)
        self.model = self._make_model()
        loss_fn, balancer = self._make_loss(), self._make_balancer()  # errors before any output
        self.train_stream, self.val_stream = self._make_streams()
        self.domain = self._make_domain()
        self.training_info = self._training_info(config or {})
        self.writer = self._make_writer()
        self.trainer = self._make_trainer(loss_fn, balancer)
        self.initial_validation = None

    # -- assembly -------------------------------------------------------------------------
    def _make_model(self):
        from ..nn.physnet import GammaPhysNet

        options = self.options
        try:
            return GammaPhysNet(self.lattice, preset=options.preset, **options.model_options)
        except (TypeError, ValueError) as err:
            raise RunConfigurationError(f"model options {options.model_options}: {err}") from None

    def _make_loss(self):
        scale = getattr(self.model, "target_scale", {})
        scales = {
            "energy": scale.get("log10_energy", 1.0),
            "direction": scale.get("fov_offset", 1.0),
            "impact": scale.get("impact", 100.0),
        }
        return MultitaskLoss(self.options.regression_loss, self.options.conditional, scales=scales)

    def _tasks(self):
        """The balanced tasks: the four physics tasks, plus the domain task when adapting."""
        return TASKS if self.options.domain_adaptation == "none" else (*TASKS, DOMAIN_TASK)

    def _make_balancer(self):
        tasks = self._tasks()
        unknown = set(self.options.task_weights) - set(tasks)
        if unknown:
            raise RunConfigurationError(f"task_weights: unknown tasks {sorted(unknown)}, expected {tasks}")
        return make_balancer(self.options.task_balancing, tasks, self.options.task_weights)

    def _make_domain(self):
        """The domain task (an extra term of the trainer), or None without adaptation."""
        options, data, ctx = self.options, self.data, self.context
        if options.domain_adaptation not in DOMAIN_METHODS:
            raise RunConfigurationError(f"domain adaptation must be one of {DOMAIN_METHODS}")
        if options.domain_adaptation == "none":
            return None
        if data.target_cache is None or data.target_indices is None or len(data.target_indices) == 0:
            raise RunConfigurationError(f"--domain-adaptation {options.domain_adaptation} needs --target files")
        n_target = len(data.target_indices)
        # whole batches where the target allows: CORAL's covariances need more than one row
        target = BatchStream(
            data.target_cache, data.target_indices, options.batch_size, shuffle=True, seed=options.seed + 1,
            rank=ctx.rank, world_size=ctx.world_size, labelled=False,
            drop_last=n_target // ctx.world_size >= options.batch_size,
        )
        total_steps = len(self.train_stream) * options.epochs
        return DomainAdaptation(
            options.domain_adaptation, self.model, target, total_steps, gamma=options.domain_gamma,
            maximum=options.domain_max_coefficient, hidden=options.domain_hidden,
        )

    def _make_streams(self):
        options, data, ctx = self.options, self.data, self.context
        train = BatchStream(
            data.cache, data.train_indices, options.batch_size, shuffle=True, seed=options.seed, rank=ctx.rank,
            world_size=ctx.world_size, class_weights=data.class_weights,
            augmentation=Augmentation(options.nsb_pe, options.time_jitter_ns, data.pixel_nsb_pe),
        )
        # every rank validates on the whole validation set: same number everywhere
        val = BatchStream(
            data.cache, data.val_indices, options.batch_size, shuffle=False, seed=options.seed,
            class_weights=data.class_weights,
        )
        return train, val

    def _make_writer(self):
        if not (self.options.tensorboard and self.context.is_main):
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.output_dir / "tensorboard"))

    def _training_info(self, config):
        data = self.data
        return jsonable({
            "package_version": __version__,
            "inputs": [str(path) for path in data.inputs],
            "n_train": int(len(data.train_indices)),
            "n_val": int(len(data.val_indices)),
            "seed": self.options.seed,
            "world_size": self.context.world_size,
            "device": str(self.device),
            "preset": self.options.preset,
            "config": dict(config),
            **self._domain_info(),
            **({"nsb_match": data.nsb_match} if data.nsb_match else {}),
        })

    def _domain_info(self):
        """The adaptation settings and the target files' provenance (model card and report)."""
        if self.domain is None and not self.data.target_info:
            return {}
        settings = {"method": "none"} if self.domain is None else self.domain.settings()
        if self.domain is not None:
            settings["n_target"] = int(len(self.data.target_indices))
        return {"domain_adaptation": {**settings, **self.data.target_info}}

    def _make_trainer(self, loss_fn, balancer):
        options, model, train_stream = self.options, self.model, self.train_stream
        optimizer = make_optimizer(model, balancer, options.learning_rate, options.weight_decay)
        extra_terms = [] if self.domain is None else [self.domain]
        for term in extra_terms:  # the domain head, with the model's decay rule
            params = [p for p in term.parameters() if p.requires_grad]
            matrices, vectors = [p for p in params if p.dim() > 1], [p for p in params if p.dim() <= 1]
            for group, decay in ((matrices, options.weight_decay), (vectors, 0.0)):
                if group:
                    optimizer.add_param_group({"params": group, "weight_decay": decay})
        scheduler = make_scheduler(
            optimizer, options.lr_schedule, len(train_stream), options.epochs, options.warmup_epochs
        )
        checkpoint_info = {
            Keys.MODEL_CONFIG: dict(model.config),
            Keys.LATTICE: self.lattice.to_dict(),
            Keys.TELESCOPE_TYPE: self.data.cache.telescope_type,
            Keys.TRAINING: self.training_info,
        }
        return Trainer(
            model, loss_fn, balancer, optimizer, train_stream, self.val_stream, scheduler=scheduler,
            device=self.device, amp_dtype=amp_dtype(options.amp, self.device), grad_clip=options.grad_clip,
            extra_terms=extra_terms, checkpoint_info=checkpoint_info,
            checkpoint_dir=self.output_dir if self.context.is_main else None,
            writer=self.writer, context=self.context, patience=options.patience, progress=options.progress_bar,
            compile_model=options.compile, log=self.log,
        )

    # -- running ----------------------------------------------------------------------------
    def begin(self, resume=False):
        """Continue from the last checkpoint (``resume``), or validate the untrained network."""
        last = self.output_dir / CHECKPOINT_LAST
        if resume and last.is_file():
            try:
                checkpoint = load_checkpoint(last, map_location=self.device)
            except CheckpointError:
                self.close()
                raise
            try:
                self.trainer.load_state(checkpoint)
            except ValueError as err:
                self.close()
                raise RunConfigurationError(f"{last}: {err}") from None
            self.initial_validation = checkpoint.get(Keys.INITIAL_VALIDATION)
            self._info("resuming after epoch %d", self.trainer.epoch)
        else:
            if resume and self.log:
                self.log.warning("%s: no checkpoint to resume from, starting afresh", last)
            self.initial_validation = self.validation_summary() if self.context.is_main else None
        self.trainer.checkpoint_info[Keys.INITIAL_VALIDATION] = self.initial_validation

    def fit(self):
        try:
            self.trainer.fit(self.options.epochs)
        finally:
            self.close()

    def close(self):
        """Flush and close TensorBoard."""
        if self.writer is not None:
            self.writer.close()

    def validation_summary(self):
        """Losses, summary metrics and metrics per energy bin on the validation set (None if empty)."""
        if self.val_stream.n_samples == 0:
            return None
        outputs, labels, losses = self.trainer.predict(self.val_stream)
        return {
            "loss": sum(losses.values()),
            "task_losses": losses,
            "metrics": summary_metrics(outputs, labels),
            "per_energy_bin": binned_metrics(outputs, labels),
        }

    # -- final products -----------------------------------------------------------------------
    def write_products(self):
        """Best model as ONNX + TorchScript, report.json and plots; returns the written paths."""
        from ..nn.export import export_model
        from .plots import plot_losses, plot_performance
        from .report import write_json

        trainer, out, telescope_type = self.trainer, self.output_dir, self.data.cache.telescope_type
        self._load_best_model()
        validation = self.validation_summary()
        training = dict(self.training_info, best_epoch=trainer.best_epoch, epochs=trainer.epoch)
        exported = export_model(
            trainer.model, self.lattice, telescope_type, out / f"gammaphysnet_{telescope_type}",
            training=training, overwrite=True,
        )
        plot_losses(trainer.history, out / "loss.png", (self.initial_validation or {}).get("loss"))
        plot_performance((validation or {}).get("per_energy_bin", []), out / "validation_performance.png")
        write_json(self._report(validation, training, exported), out / "report.json")
        self._info("wrote %s and %s", exported["onnx"], out / "report.json")
        return [exported["onnx"], exported["torchscript"], out / "report.json", out / "loss.png",
                out / "validation_performance.png"]

    def _load_best_model(self):
        best = self.output_dir / CHECKPOINT_BEST
        if best.is_file():
            state = load_checkpoint(best, map_location=self.trainer.device)[Keys.MODEL_STATE]
            self.trainer.model.load_state_dict(state)

    def _report(self, validation, training, exported):
        trainer, cache = self.trainer, self.data.cache
        return {
            "epochs": trainer.history,
            "best_epoch": trainer.best_epoch,
            "best_val_loss": trainer.best_val_loss,
            "stopped_early": trainer.stopped_early,
            "untrained_validation": self.initial_validation,
            "validation": validation,
            "data": {key: cache.meta[key] for key in _REPORTED_DATA},
            "telescope_type": cache.telescope_type,
            **({"target_data": {key: self.data.target_cache.meta[key] for key in _REPORTED_TARGET}}
               if self.data.target_cache is not None else {}),
            "training": training,
            **({"nsb_match_pixel_extra_pe": [round(float(v), 4) for v in self.data.pixel_nsb_pe]}
               if self.data.pixel_nsb_pe is not None else {}),
            "export": {"onnx": exported["onnx"].name, "torchscript": exported["torchscript"].name,
                       "max_rel_diff": exported["max_rel_diff"]},
        }

    def _info(self, message, *args):
        if self.log:
            self.log.info(message, *args)
