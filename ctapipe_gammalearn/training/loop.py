"""The epoch loop: optimisation, validation, checkpoints, early stopping, logging.

`Trainer` knows nothing about files or ctapipe: it gets a model, batch streams
and a place to write checkpoints. Extra loss terms (e.g. a domain-adversarial
head fed by a second, unlabelled stream) plug in through ``extra_terms``: each
is a callable ``term(model, batch, epoch, step) -> dict[name, loss tensor]``
whose losses are logged and added to the objective: through the task balancer
when it has a task of that name (the domain task of `training.domain`), as they
are otherwise. A term that is an ``nn.Module`` (a domain head) is moved to the
device, its gradients are averaged across DDP ranks and clipped with the
model's, and its state goes into the checkpoint (see docs/training.md).
"""

import contextlib
import math
import time

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .balancing import GradNorm
from .checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, Keys, rng_state, save_checkpoint, set_rng_state
from .losses import TASKS, outputs_as_dict

__all__ = ["Trainer", "EpochResult", "append_rows", "warmup_cosine", "last_shared_parameter"]


def warmup_cosine(total_steps, warmup_steps):
    """LR factor per step: linear warm-up then cosine decay to 1 % of the peak."""

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def last_shared_parameter(model):
    """The weight GradNorm measures task gradients on: the model's own choice
    (``model.shared_parameter()``) or the last parameter outside any head."""
    if hasattr(model, "shared_parameter"):
        return model.shared_parameter()
    heads = ("classifier", "energy", "direction", "impact", "head")
    candidates = [
        p for name, p in model.named_parameters() if p.requires_grad and not any(h in name for h in heads)
    ]
    if not candidates:
        raise ValueError("cannot find a shared parameter for GradNorm")
    return next(p for p in reversed(candidates) if p.dim() > 1)


class EpochResult(dict):
    """``{"epoch", "train_loss", "val_loss", "train_<task>", "val_<task>", "lr", "images_per_s"}``."""


def append_rows(image, peak_time, rows):
    """``image`` and ``peak_time`` followed by those of the batch ``rows``, on their device."""
    device = image.device
    return (
        torch.cat([image, rows["image"].to(device, non_blocking=True)]),
        torch.cat([peak_time, rows["peak_time"].to(device, non_blocking=True)]),
    )


class Trainer:
    """Runs epochs of a multitask model on dict batches (see `data.BatchStream`)."""

    def __init__(
        self,
        model,
        loss_fn,
        balancer,
        optimizer,
        train_stream,
        val_stream=None,
        scheduler=None,
        device="cpu",
        amp_dtype=None,
        grad_clip=1.0,
        extra_terms=(),
        checkpoint_info=None,
        checkpoint_dir=None,
        writer=None,
        context=None,
        patience=0,
        progress=True,
        compile_model=False,
        log=None,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.balancer = balancer.to(self.device)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_stream = train_stream
        self.val_stream = val_stream
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.grad_clip = grad_clip
        self.extra_terms = list(extra_terms)
        self.extra_modules = [term.to(self.device) for term in self.extra_terms if isinstance(term, torch.nn.Module)]
        self.checkpoint_info = dict(checkpoint_info or {})
        self.checkpoint_dir = checkpoint_dir
        self.writer = writer
        self.context = context
        self.patience = int(patience)
        self.progress = progress
        self.log = log
        self.history = []
        self.epoch = 0
        self.global_step = 0
        self.best_val_loss = math.inf
        self.best_epoch = 0
        self.epochs_since_best = 0
        self.stopped_early = False
        self._shared = last_shared_parameter(model) if isinstance(balancer, GradNorm) else None

        net = self.model
        if context is not None and context.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(net, device_ids=ids)
        self.eager_net = net
        self.net = torch.compile(net) if compile_model else net

    def _average_across_ranks(self, tensors):
        """The balancer is not inside DDP: without this its weights would drift apart between
        ranks (each sees only its own losses), and a resumed run, which gives every rank
        rank 0's weights, would not continue the same training."""
        if self.context is None or not self.context.enabled:
            return
        for tensor in tensors:
            torch.distributed.all_reduce(tensor)
            tensor /= self.context.world_size

    @property
    def is_main(self):
        return self.context is None or self.context.is_main

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, batch):
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _joint_inputs(self, batch):
        """The step's network inputs: the batch, followed by the rows an extra term adds
        (the unlabelled target of domain adaptation: one forward pass over both domains, so
        that batch normalisation sees them together, as at inference)."""
        image, peak_time = batch["image"], batch["peak_time"]
        for term in self.extra_terms:
            extra = term.joint_inputs(self.global_step) if hasattr(term, "joint_inputs") else None
            if extra is not None:
                image, peak_time = append_rows(image, peak_time, extra)
        return image, peak_time

    def train_epoch(self, epoch):
        self.net.train()
        self.train_stream.set_epoch(epoch)
        sums = {t: 0.0 for t in TASKS}
        total_sum, n_seen = 0.0, 0
        start = time.perf_counter()
        bar = tqdm(
            total=len(self.train_stream),
            desc=f"epoch {epoch}",
            unit="batch",
            disable=not (self.progress and self.is_main),
            leave=False,
        )
        extra_sums = {}
        balanced_tasks = set(getattr(self.balancer, "tasks", TASKS))
        for batch in self.train_stream:
            batch = self._to_device(batch)
            n = len(batch["image"])
            image, peak_time = self._joint_inputs(batch)
            # a compiled net would compile again for the short last batch (a minute on 2 cores)
            full = n == self.train_stream.batch_size and len(image) in (n, 2 * n)
            net = self.net if full else self.eager_net
            with self._autocast():
                outputs = net(image, peak_time)
                terms = getattr(self.model, "direction_terms", None)
                if len(image) > n:  # the physics tasks see the labelled rows only
                    outputs = tuple(o[:n] for o in outputs)
                    terms = None if terms is None else {k: v[:n] for k, v in terms.items()}
                losses = self.loss_fn(outputs, batch, direction_terms=terms)
                extra = {}
                for term in self.extra_terms:
                    extra.update(term(net, batch, epoch, self.global_step))
            if terms is not None:
                self.model.direction_terms = None  # drop the references to this step's graph
            balanced = {**losses, **{k: v for k, v in extra.items() if k in balanced_tasks}}
            if self._shared is not None:
                self.balancer.update(balanced, self._shared)
                self._average_across_ranks(list(self.balancer.buffers()))
            objective = self.balancer(balanced) + sum(v for k, v in extra.items() if k not in balanced_tasks)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(objective).backward()
            self._average_across_ranks([q.grad for q in self.balancer.parameters() if q.grad is not None])
            self._average_across_ranks([q.grad for q in self._extra_parameters() if q.grad is not None])
            if self.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_([*self.model.parameters(), *self._extra_parameters()], self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scheduler is not None:
                self.scheduler.step()
            self.global_step += 1

            values = {t: float(losses[t].detach()) for t in TASKS}
            for t in TASKS:
                sums[t] += values[t] * n
            total_sum += sum(values.values()) * n
            for name, value in extra.items():
                extra_sums[name] = extra_sums.get(name, 0.0) + float(value.detach()) * n
            n_seen += n
            rate = n_seen / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{total_sum / n_seen:.4g}", img_s=f"{rate:.0f}")
            bar.update(1)
            if self.writer is not None and self.is_main:
                self.writer.add_scalar("train/step_loss", sum(values.values()), self.global_step)
                for name, value in extra.items():
                    self.writer.add_scalar(f"train/{name}", float(value.detach()), self.global_step)
        bar.close()
        elapsed = time.perf_counter() - start
        n_seen = max(n_seen, 1)
        result = {"train_loss": total_sum / n_seen, "images_per_s": n_seen / max(elapsed, 1e-9)}
        result.update({f"train_{t}": sums[t] / n_seen for t in TASKS})
        result.update({f"train_{name}": value / n_seen for name, value in extra_sums.items()})
        return result

    def _extra_parameters(self):
        return [p for module in self.extra_modules for p in module.parameters() if p.requires_grad]

    @torch.no_grad()
    def predict(self, stream):
        """Outputs and labels of every event of ``stream`` as numpy dicts, plus the losses."""
        self.model.eval()
        outputs, labels = {}, {}
        sums = {t: 0.0 for t in TASKS}
        n_seen = 0
        for batch in stream:
            batch = self._to_device(batch)
            with self._autocast():
                out = outputs_as_dict(self.model(batch["image"], batch["peak_time"]))
                losses = self.loss_fn(out, batch)
            n = len(batch["image"])
            for t in TASKS:
                sums[t] += float(losses[t]) * n
            n_seen += n
            for name, value in out.items():
                outputs.setdefault(name, []).append(value.float().cpu().numpy())
            for name in ("log10_energy", "fov_offset", "impact", "particle"):
                labels.setdefault(name, []).append(batch[name].cpu().numpy())
        outputs = {k: np.concatenate(v) for k, v in outputs.items()}
        labels = {k: np.concatenate(v) for k, v in labels.items()}
        task_losses = {t: sums[t] / max(n_seen, 1) for t in TASKS}
        return outputs, labels, task_losses

    def validate(self):
        if self.val_stream is None or self.val_stream.n_samples == 0:
            return {}
        _, _, task_losses = self.predict(self.val_stream)
        result = {"val_loss": sum(task_losses.values())}
        result.update({f"val_{t}": v for t, v in task_losses.items()})
        return result

    def state(self):
        return {
            **self.checkpoint_info,
            Keys.MODEL_STATE: self.model.state_dict(),
            Keys.OPTIMIZER_STATE: self.optimizer.state_dict(),
            Keys.SCHEDULER_STATE: None if self.scheduler is None else self.scheduler.state_dict(),
            Keys.BALANCER_STATE: self.balancer.state_dict(),
            Keys.SCALER_STATE: self.scaler.state_dict(),
            Keys.EPOCH: self.epoch,
            Keys.GLOBAL_STEP: self.global_step,
            Keys.BEST_VAL_LOSS: self.best_val_loss,
            Keys.BEST_EPOCH: self.best_epoch,
            Keys.EPOCHS_SINCE_BEST: self.epochs_since_best,
            Keys.STOPPED_EARLY: self.stopped_early,
            Keys.HISTORY: list(self.history),
            Keys.RNG_STATE: rng_state(),
            Keys.EXTRA_STATE: [module.state_dict() for module in self.extra_modules],
        }

    def load_state(self, checkpoint):
        """Continue from a checkpoint written by `state` (model, optimiser, RNG, history)."""
        extra_states = checkpoint.get(Keys.EXTRA_STATE) or []
        if len(extra_states) != len(self.extra_modules):
            raise ValueError(
                f"the checkpoint holds {len(extra_states)} extra loss terms (domain heads), "
                f"this run has {len(self.extra_modules)}: resume with the same --domain-adaptation"
            )
        for module, state in zip(self.extra_modules, extra_states):
            try:
                module.load_state_dict(state)
            except RuntimeError as err:
                reason = str(err).splitlines()[0]
                raise ValueError(f"{reason}: resume with the same --domain-adaptation") from None
        self.model.load_state_dict(checkpoint[Keys.MODEL_STATE])
        self.optimizer.load_state_dict(checkpoint[Keys.OPTIMIZER_STATE])
        if self.scheduler is not None and checkpoint.get(Keys.SCHEDULER_STATE) is not None:
            self.scheduler.load_state_dict(checkpoint[Keys.SCHEDULER_STATE])
        self.balancer.load_state_dict(checkpoint[Keys.BALANCER_STATE])
        self.scaler.load_state_dict(checkpoint[Keys.SCALER_STATE])
        self.epoch = checkpoint[Keys.EPOCH]
        self.global_step = checkpoint[Keys.GLOBAL_STEP]
        self.best_val_loss = checkpoint[Keys.BEST_VAL_LOSS]
        self.best_epoch = checkpoint[Keys.BEST_EPOCH]
        self.epochs_since_best = checkpoint[Keys.EPOCHS_SINCE_BEST]
        self.stopped_early = checkpoint.get(Keys.STOPPED_EARLY, False)
        self.history = list(checkpoint[Keys.HISTORY])
        set_rng_state(checkpoint[Keys.RNG_STATE])

    def fit(self, n_epochs):
        """Train until ``n_epochs`` (counting resumed ones) or early stopping; returns history."""
        while self.epoch < n_epochs and not self.stopped_early:
            epoch = self.epoch + 1
            result = EpochResult(epoch=epoch)
            result.update(self.train_epoch(epoch))
            result.update(self.validate())
            result["lr"] = self.optimizer.param_groups[0]["lr"]
            result["task_weights"] = self.balancer.task_weights()
            self.epoch = epoch
            self.history.append(dict(result))
            score = result.get("val_loss", result["train_loss"])
            improved = score < self.best_val_loss
            if improved:
                self.best_val_loss, self.best_epoch, self.epochs_since_best = score, epoch, 0
            else:
                self.epochs_since_best += 1
            if self.patience and self.epochs_since_best >= self.patience:
                self.stopped_early = True
            self._log_epoch(result)
            if self.is_main and self.checkpoint_dir is not None:
                state = self.state()
                save_checkpoint(state, self.checkpoint_dir / CHECKPOINT_LAST)
                if improved:
                    save_checkpoint(state, self.checkpoint_dir / CHECKPOINT_BEST)
            if self.context is not None:
                self.context.barrier()
        return self.history

    def _log_epoch(self, result):
        if not self.is_main:
            return
        if self.log:
            self.log.info(
                "epoch %d: train loss %.4g, val loss %s, %.0f images/s",
                result["epoch"],
                result["train_loss"],
                f"{result.get('val_loss', float('nan')):.4g}",
                result["images_per_s"],
            )
        if self.writer is not None:
            for key, value in result.items():
                if isinstance(value, float):
                    group = "val" if key.startswith("val") else "train" if key.startswith("train") else "misc"
                    self.writer.add_scalar(f"{group}/{key}", value, result["epoch"])
            for task, weight in result["task_weights"].items():
                self.writer.add_scalar(f"task_weight/{task}", weight, result["epoch"])
            self.writer.flush()
