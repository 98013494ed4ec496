"""Multitask loss of γ-PhysNet: classification + three regressions.

Regressions are compared in normalised units (divided by a per-task scale:
1 for log10 E, ~1 deg for the offset, ~100 m for the impact) so that no task
dominates through its unit. ``"l1"`` ignores the log-variance heads;
``"gaussian_nll"`` trains them: 0.5 (ln var + (y - mu)^2 / var);
``"laplace_nll"`` too, with a Laplace likelihood of the same
variance: ln b + |y - mu| / b, b = sqrt(var / 2). Its loss grows linearly with
the residual, so a few badly reconstructed events (truncated or faint images)
cannot dominate a batch, or the validation loss that picks the best model.
``"l1_laplace"`` (the training tool's default) trains the prediction with plain L1 and the log-variance with
the Laplace likelihood of the detached residual: in a likelihood, the residual
is divided by the predicted b, so the events the network finds hard (large b)
teach the prediction least, and the regression under-fits exactly there.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..modelcard import GAMMA_CLASS_INDEX, OUTPUT_NAMES

__all__ = ["TASKS", "DEFAULT_SCALES", "REGRESSION_LOSSES", "MultitaskLoss", "disp_loss", "outputs_as_dict"]

TASKS = ("particle", "energy", "direction", "impact")
DEFAULT_SCALES = {"energy": 1.0, "direction": 1.0, "impact": 100.0}
# (prediction output, log-variance output, label key) of each regression task
_REGRESSIONS = {
    "energy": ("log10_energy", "log10_energy_logvar", "log10_energy"),
    "direction": ("fov_offset", "fov_offset_logvar", "fov_offset"),
    "impact": ("impact", "impact_logvar", "impact"),
}
# normalised log-variances are kept within [-7, 7]: sigma >= 0.03 in normalised
# units (0.03 in log10 E, 0.03 deg, 3 m) is already better than any IACT
# resolution, and the floor stops over-confident outliers from exploding the loss
_LOGVAR_MIN, _LOGVAR_MAX = -7.0, 7.0
REGRESSION_LOSSES = ("laplace_nll", "l1_laplace", "gaussian_nll", "l1")


def outputs_as_dict(outputs):
    """Network output tuple -> dict keyed by `modelcard.OUTPUT_NAMES`."""
    if isinstance(outputs, dict):
        return outputs
    return dict(zip(OUTPUT_NAMES, outputs, strict=True))


def _weighted_mean(values, weights):
    total = weights.sum()
    if total <= 0:
        return values.sum() * 0.0  # keeps the graph, contributes nothing
    return (values * weights).sum() / total


def disp_loss(terms, true_fov, scale=1.0):
    """Per-event |disp| and disp-sign loss of a Hillas+disp-structured direction head.

    ``terms`` (``GammaPhysNet.direction_terms``): image ``centroid`` and main
    ``axis``, predicted ``disp_magnitude`` and ``disp_sign_logit``. The true
    disp is the true source offset from the centroid along the axis. L1 on the
    magnitude (in units of ``scale``) plus binary cross-entropy on the sign,
    as a random forest is trained for ctapipe's DispReconstructor.
    """
    offset = true_fov.float() - terms["centroid"].float()
    along = (offset * terms["axis"].float()).sum(dim=1)
    magnitude = (terms["disp_magnitude"].float() - along.abs()).abs() / scale
    sign = F.binary_cross_entropy_with_logits(
        terms["disp_sign_logit"].float(), (along > 0).float(), reduction="none"
    )
    return magnitude + sign


class MultitaskLoss(nn.Module):
    """Per-task losses ``{"particle", "energy", "direction", "impact"}`` of one batch.

    ``conditional``: regressions on gammas only (GammaLearn's default), since
    a proton's "direction" is not what the network should learn to find.
    """

    def __init__(self, regression="l1_laplace", conditional=True, scales=None):
        super().__init__()
        if regression not in REGRESSION_LOSSES:
            raise ValueError(f"regression must be one of {REGRESSION_LOSSES}, not {regression!r}")
        self.regression = regression
        self.conditional = conditional
        self.scales = {**DEFAULT_SCALES, **(scales or {})}

    def _regression(self, pred, logvar, target, scale):
        pred = pred.float().reshape(pred.shape[0], -1) / scale
        target = target.float().reshape(target.shape[0], -1) / scale
        if self.regression == "l1":
            return (pred - target).abs().mean(dim=1)
        # the log-variance is in the output unit: shift it to the normalised one
        logvar = logvar.float().reshape(logvar.shape[0], -1) - 2 * math.log(scale)
        logvar = logvar.clamp(_LOGVAR_MIN, _LOGVAR_MAX)
        if self.regression == "laplace_nll":
            log_b = 0.5 * (logvar - math.log(2.0))
            return (log_b + (pred - target).abs() * torch.exp(-log_b)).mean(dim=1)
        if self.regression == "l1_laplace":
            log_b = 0.5 * (logvar - math.log(2.0))
            residual = (pred - target).abs()
            return (residual + log_b + residual.detach() * torch.exp(-log_b)).mean(dim=1)
        return (0.5 * (logvar + (pred - target) ** 2 * torch.exp(-logvar))).mean(dim=1)

    def forward(self, outputs, batch, direction_terms=None):
        """``direction_terms``: the model's training-only disp terms (see `disp_loss`), or None."""
        out = outputs_as_dict(outputs)
        weight = batch["weight"].float()
        losses = {
            "particle": _weighted_mean(
                F.cross_entropy(out["class_logits"].float(), batch["particle"], reduction="none"), weight
            )
        }
        reg_weight = weight * (batch["particle"] == GAMMA_CLASS_INDEX) if self.conditional else weight
        for task, (pred_name, logvar_name, label) in _REGRESSIONS.items():
            per_event = self._regression(out[pred_name], out[logvar_name], batch[label], self.scales[task])
            losses[task] = _weighted_mean(per_event, reg_weight)
        if direction_terms is not None:
            per_event = disp_loss(direction_terms, batch["fov_offset"], self.scales["direction"])
            losses["direction"] = losses["direction"] + _weighted_mean(per_event, reg_weight)
        return losses
