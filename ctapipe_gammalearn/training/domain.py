"""Unsupervised domain adaptation: one more task of the multitask balancing.

The labelled source (simulation) trains the four physics tasks; an unlabelled
target (observed runs, or a shifted simulation) enters through one extra task,
``"domain"``, computed on the backbone features (`GammaPhysNet.features`) of a
source batch and of a target batch:

- ``dann`` (Ganin et al. 2016): a gradient-reversal layer and a domain
  classifier; the classifier learns to tell the domains apart, the backbone,
  through the reversed gradient, to make them indistinguishable. The reversal
  coefficient follows Ganin's schedule ``lambda(p) = max (2 / (1 + exp(-gamma p)) - 1)``
  with ``p`` the training progress in [0, 1].
- ``cdann`` (CDAN, Long et al. 2018): the same, with the domain classifier fed
  the multilinear map of the features and the class prediction (softmax).
- ``coral`` (Sun & Saenko 2016, DeepCORAL): distance of the feature covariances.
- ``dan`` (Long et al. 2015): multi-kernel (Gaussian) maximum mean discrepancy.
- ``deepjdot`` (Damodaran et al. 2018): optimal transport between the source and
  target batches in the joint space of features and labels: the cost of pairing
  source i with target j is the squared feature distance plus the cross-entropy of
  the target's class prediction against the source's class. With equal-size batches
  of uniform weights the exact transport plan is a permutation, found by
  `scipy.optimize.linear_sum_assignment`; the loss is the mean cost of the pairs.

`DomainAdaptation` is the trainer's extra term (``Trainer(extra_terms=[term])``):
``term.joint_inputs(step)`` gives the target batch, which the trainer runs through the
network in one forward pass with the source batch (shared batch-normalisation
statistics, as in the usual DANN implementations: separate passes would normalise each
domain by itself and hide most of the shift), then
``term(model, batch, epoch, step) -> {"domain": loss}`` reads the features of both
halves. The target is read in
a seeded order and recycled when shorter than the source: the target batch of
a step is a function of the global step alone, so a resumed run draws the same
ones. The term is an ``nn.Module``: its head joins the optimiser, its state
(head and schedule position) the checkpoint.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .loop import append_rows

__all__ = [
    "DOMAIN_METHODS",
    "DOMAIN_TASK",
    "GradientReversal",
    "grad_reverse",
    "ganin_coefficient",
    "DomainClassifier",
    "coral_loss",
    "mmd_loss",
    "jdot_loss",
    "domain_classifier_loss",
    "DomainAdaptation",
    "feature_array",
    "load_network",
    "cache_features",
]

#: values of ``--domain-adaptation`` (``none``: off)
DOMAIN_METHODS = ("none", "dann", "cdann", "coral", "dan", "deepjdot")
#: the balancer's name for the domain task
DOMAIN_TASK = "domain"
_ADVERSARIAL = ("dann", "cdann")


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient multiplied by ``-coefficient`` backward."""

    @staticmethod
    def forward(ctx, x, coefficient):
        ctx.coefficient = float(coefficient)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coefficient * grad, None


def grad_reverse(x, coefficient=1.0):
    return GradientReversal.apply(x, coefficient)


def ganin_coefficient(progress, gamma=10.0, maximum=1.0):
    """Ganin et al. (2016): 0 at the start, rising smoothly to ``maximum``."""
    progress = min(max(float(progress), 0.0), 1.0)
    return maximum * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class DomainClassifier(nn.Module):
    """MLP features -> one logit (target domain = 1)."""

    def __init__(self, n_features, hidden=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, x):
        return self.net(x).squeeze(1)


def domain_classifier_loss(source_logits, target_logits):
    """Binary cross-entropy, source 0 and target 1, each domain weighing half whatever the batch sizes."""
    source = F.binary_cross_entropy_with_logits(source_logits.float(), torch.zeros_like(source_logits.float()))
    target = F.binary_cross_entropy_with_logits(target_logits.float(), torch.ones_like(target_logits.float()))
    return 0.5 * (source + target)


def _covariance(x):
    x = x - x.mean(dim=0, keepdim=True)
    return x.T @ x / max(x.shape[0] - 1, 1)


def coral_loss(source, target):
    """DeepCORAL: squared Frobenius distance of the feature covariances over 4 d^2."""
    source, target = source.float(), target.float()
    d = source.shape[1]
    return ((_covariance(source) - _covariance(target)) ** 2).sum() / (4.0 * d * d)


def mmd_loss(source, target, n_kernels=5, kernel_mul=2.0):
    """Multi-kernel MMD^2 (biased estimate, >= 0) with Gaussian kernels.

    The bandwidths are ``kernel_mul**k`` times the mean pairwise squared distance
    of the pooled batch (detached), ``k`` centred on 0, as in DAN.
    """
    source, target = source.float(), target.float()
    n = source.shape[0]
    pooled = torch.cat([source, target], dim=0)
    distances = torch.cdist(pooled, pooled).pow(2)
    m = pooled.shape[0]
    base = distances.detach().sum() / max(m * m - m, 1)
    base = torch.clamp(base, min=1e-12)
    scales = [base * kernel_mul ** (k - n_kernels // 2) for k in range(n_kernels)]
    kernel = sum(torch.exp(-distances / s) for s in scales)
    xx, yy, xy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    return torch.clamp(xx.mean() + yy.mean() - 2.0 * xy.mean(), min=0.0)


def jdot_loss(source, target, source_class, target_logits, alpha=1.0, lam=1.0):
    """Mini-batch DeepJDOT: exact optimal transport (uniform weights, equal sizes: an assignment)
    under the cost alpha * |f_s - f_t|^2 / s + lam * CE(y_s, class(f_t)).

    ``s`` is the mean squared distance within the source batch (detached): the feature
    cost does not depend on the scale of the features. The larger batch is cut to the
    size of the smaller. ``lam=0`` leaves the feature transport alone (zero for identical
    batches, growing with a shift).
    """
    from scipy.optimize import linear_sum_assignment

    m = min(len(source), len(target))
    source, target = source[:m].float(), target[:m].float()
    distance = torch.cdist(source, target).pow(2)
    scale = torch.cdist(source, source).pow(2).detach().sum() / max(m * m - m, 1)
    cost = alpha * distance / torch.clamp(scale, min=1e-12)
    if lam:
        log_p = torch.log_softmax(target_logits[:m].float(), dim=1)  # (m_t, classes)
        cost = cost - lam * log_p[:, source_class[:m].long()].T  # [i, j]: CE(y_s_i, prediction of t_j)
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    pairs = (torch.as_tensor(rows, device=cost.device), torch.as_tensor(cols, device=cost.device))
    return cost[pairs].mean()


def _multilinear(features, class_logits):
    """CDAN conditioning: the outer product of the features and the class probabilities, flattened."""
    probabilities = torch.softmax(class_logits.float(), dim=1).detach()
    return torch.bmm(probabilities.unsqueeze(2), features.float().unsqueeze(1)).flatten(1)


class DomainAdaptation(nn.Module):
    """The domain task of a run: ``term(model, batch, epoch, step) -> {"domain": loss}``.

    Parameters
    ----------
    method : str
        one of `DOMAIN_METHODS` except ``none``
    model : GammaPhysNet
        the network (its ``keep_features`` is switched on: training forwards
        then leave their features for this term)
    target_stream : BatchStream
        unlabelled target batches (``labelled=False``)
    total_steps : int
        optimiser steps of the whole run (the schedule's ``p = step / total_steps``)
    gamma, maximum : float
        Ganin's schedule of the reversal coefficient (adversarial methods)
    hidden : int
        hidden units of the domain classifier
    """

    def __init__(self, method, model, target_stream, total_steps, gamma=10.0, maximum=1.0, hidden=64):
        super().__init__()
        if method not in DOMAIN_METHODS or method == "none":
            raise ValueError(f"domain adaptation must be one of {DOMAIN_METHODS[1:]}, not {method!r}")
        self.method = method
        self.target_stream = target_stream
        self.total_steps = max(int(total_steps), 1)
        self.gamma, self.maximum = float(gamma), float(maximum)
        # the learnt columns of the features: the image moments are computed, and a domain
        # classifier that reads them would tell the domains apart whatever the backbone learns
        n_features = learnt_feature_count(model)
        n_classes = model.classifier[-1].out_features
        if method == "dann":
            self.head = DomainClassifier(n_features, hidden)
        elif method == "cdann":
            self.head = DomainClassifier(n_features * n_classes, hidden)
        else:
            self.head = nn.Identity()
        # the schedule's position, saved in the checkpoint with the head
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self.register_buffer("coefficient", torch.zeros(()))
        model.keep_features = True
        self._order, self._cycle = None, None

    # -- target batches, recycled -------------------------------------------------------
    def target_batch(self, step):
        """The target batch of global step ``step``: cycle ``step // n``, batch ``step % n``."""
        stream = self.target_stream
        n_batches = len(stream)
        if n_batches == 0:
            raise ValueError("the target stream is empty")
        cycle, index = divmod(int(step), n_batches)
        if cycle != self._cycle:
            stream.set_epoch(cycle)
            self._order, self._cycle = stream.order(), cycle
        rows = self._order[index * stream.batch_size : (index + 1) * stream.batch_size]
        return stream.fetch(rows)

    # -- the loss -------------------------------------------------------------------------
    def schedule(self, step):
        return ganin_coefficient(step / self.total_steps, self.gamma, self.maximum)

    def loss(self, source_features, target_features, source_logits=None, target_logits=None, coefficient=1.0,
             source_class=None):
        """The domain loss of two feature batches (class logits for ``cdann``, with the source
        classes for ``deepjdot``)."""
        if self.method == "deepjdot":
            return jdot_loss(source_features, target_features, source_class, target_logits)
        if self.method == "coral":
            return coral_loss(source_features, target_features)
        if self.method == "dan":
            return mmd_loss(source_features, target_features)
        source = grad_reverse(source_features.float(), coefficient)
        target = grad_reverse(target_features.float(), coefficient)
        if self.method == "cdann":
            source, target = _multilinear(source, source_logits), _multilinear(target, target_logits)
        return domain_classifier_loss(self.head(source), self.head(target))

    def joint_inputs(self, step):
        """The target rows the trainer appends to the source batch of ``step``.

        Source and target go through the network in one batch: batch normalisation in
        training mode normalises each forward pass with its own statistics, so separate
        passes would hide from the domain loss the shift in every channel's mean and
        spread that inference (running statistics) shows.
        """
        return self.target_batch(step)

    def forward(self, model, batch, epoch, step):
        inner = getattr(model, "module", model)  # DDP or torch.compile wrappers
        inner = getattr(inner, "_orig_mod", inner)
        n = len(batch["image"])
        joint = getattr(inner, "domain_features", None)
        inner.domain_features = None  # drop the reference to this step's graph
        if joint is None or len(joint) <= n:  # no joint forward kept its features: one here
            joint = inner.features(*append_rows(batch["image"], batch["peak_time"], self.joint_inputs(step)))[0]
        source, target = joint[:n], joint[n:]
        coefficient = self.schedule(step) if self.method in _ADVERSARIAL else 1.0
        self.step.fill_(int(step) + 1)
        self.coefficient.fill_(coefficient)
        conditioned = self.method in ("cdann", "deepjdot")
        logits = (inner.classifier(source), inner.classifier(target)) if conditioned else (None, None)
        n = learnt_feature_count(inner)
        return {DOMAIN_TASK: self.loss(source[:, :n], target[:, :n], *logits, coefficient=coefficient,
                                       source_class=batch.get("particle"))}

    def settings(self):
        """Plain description for the model card and the report."""
        out = {"method": self.method, "task": DOMAIN_TASK, "features": FEATURES_DESCRIPTION}
        if self.method in _ADVERSARIAL:
            out["reversal_schedule"] = {
                "kind": "ganin2016", "gamma": self.gamma, "maximum": self.maximum, "total_steps": self.total_steps
            }
        return out


FEATURES_DESCRIPTION = "GammaPhysNet.features, learnt columns (pooled backbone and light positions)"


def learnt_feature_count(model):
    """How many leading columns of ``model.features`` are learnt (all of a model that does not say)."""
    return int(getattr(model, "n_learnt_features", model.classifier[0].in_features))


def feature_array(model, stream, device="cpu", max_events=None):
    """Backbone features of every event of ``stream`` (eval mode), as one numpy array."""
    model.eval()
    chunks, n = [], 0
    with torch.no_grad():
        for batch in stream:
            f = model.features(batch["image"].to(device), batch["peak_time"].to(device))[0]
            chunks.append(f.float().cpu().numpy())
            n += len(f)
            if max_events is not None and n >= max_events:
                break
    if not chunks:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(chunks)[:max_events]


def load_network(path, device="cpu"):
    """A trained γ-PhysNet from a checkpoint, or from a run directory (its best checkpoint,
    else its last). Returns ``(model, telescope_type, lattice, checkpoint_path)``; raises
    `CheckpointError` (one line naming the file) when there is none or it cannot be read."""
    from pathlib import Path

    from ..lattice import Lattice
    from ..nn.physnet import GammaPhysNet
    from .checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, EXPORT_KEYS, CheckpointError, Keys, load_checkpoint

    path = Path(path)
    if path.is_dir():
        found = [path / name for name in (CHECKPOINT_BEST, CHECKPOINT_LAST) if (path / name).is_file()]
        if not found:
            raise CheckpointError(f"{path}: no {CHECKPOINT_BEST} or {CHECKPOINT_LAST} in this run directory")
        path = found[0]
    elif not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    checkpoint = load_checkpoint(path, map_location="cpu")
    missing = [key for key in EXPORT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a γ-PhysNet training checkpoint (lacks {', '.join(missing)})")
    lattice = Lattice.from_dict(checkpoint[Keys.LATTICE])
    model = GammaPhysNet(lattice, **checkpoint[Keys.MODEL_CONFIG])
    model.load_state_dict(checkpoint[Keys.MODEL_STATE])
    return model.to(device).eval(), str(checkpoint[Keys.TELESCOPE_TYPE]), lattice, path


def cache_features(model, cache, rows, batch_size=256, device="cpu"):
    """Backbone features of the cached events ``rows`` (any cache, labelled or not)."""
    from .stream import BatchStream

    stream = BatchStream(cache, np.sort(np.asarray(rows, np.int64)), batch_size, shuffle=False, labelled=False)
    return feature_array(model, stream, device=device)
