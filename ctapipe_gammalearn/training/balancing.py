"""Task balancing: how the per-task losses become one number to minimise.

- `FixedWeights`: sum of w_i L_i.
- `UncertaintyWeighting` (Kendall, Gal & Cipolla 2018): sum of exp(-s_i) L_i + s_i
  with learnt s_i = ln(sigma_i^2).
- `GradNorm` (Chen et al. 2018): learnt w_i, pushed so that the gradient norms
  of w_i L_i on the last shared layer follow each task's training rate.

All are `nn.Module` so their parameters and state go into the checkpoint.
"""

import torch
from torch import nn

__all__ = ["FixedWeights", "UncertaintyWeighting", "GradNorm", "make_balancer"]


class FixedWeights(nn.Module):
    def __init__(self, tasks, weights=None):
        super().__init__()
        self.tasks = tuple(tasks)
        weights = weights or {}
        self.register_buffer("weights", torch.tensor([float(weights.get(t, 1.0)) for t in self.tasks]))

    def task_weights(self):
        return dict(zip(self.tasks, self.weights.tolist()))

    def forward(self, losses):
        return sum(w * losses[t] for t, w in zip(self.tasks, self.weights))


class UncertaintyWeighting(nn.Module):
    def __init__(self, tasks):
        super().__init__()
        self.tasks = tuple(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def task_weights(self):
        return dict(zip(self.tasks, torch.exp(-self.log_vars).tolist()))

    def forward(self, losses):
        return sum(torch.exp(-s) * losses[t] + s for t, s in zip(self.tasks, self.log_vars))


class GradNorm(nn.Module):
    """GradNorm with asymmetry ``alpha``; call `update` after each backward of `forward`.

    ``update`` adjusts the weights with its own small SGD step, so the main
    optimizer never sees them.
    """

    def __init__(self, tasks, alpha=1.5, lr=0.025):
        super().__init__()
        self.tasks = tuple(tasks)
        self.alpha = float(alpha)
        self.lr = float(lr)
        self.register_buffer("weights", torch.ones(len(self.tasks)))
        self.register_buffer("initial_losses", torch.full((len(self.tasks),), float("nan")))

    def task_weights(self):
        return dict(zip(self.tasks, self.weights.tolist()))

    def forward(self, losses):
        return sum(w * losses[t] for t, w in zip(self.tasks, self.weights))

    def update(self, losses, shared_parameter):
        """One GradNorm step on the weights from this batch's task losses."""
        current = torch.stack([losses[t].detach() for t in self.tasks])
        if torch.isnan(self.initial_losses).any():
            self.initial_losses.copy_(torch.where(current > 0, current, torch.ones_like(current)))
        norms = []
        for task in self.tasks:
            if not losses[task].requires_grad:
                norms.append(torch.zeros((), device=current.device))
                continue
            (grad,) = torch.autograd.grad(losses[task], shared_parameter, retain_graph=True, allow_unused=True)
            norms.append(torch.zeros((), device=current.device) if grad is None else grad.norm())
        norms = torch.stack(norms) * self.weights
        ratios = current / self.initial_losses
        target = norms.mean() * (ratios / ratios.mean()) ** self.alpha
        # d|w_i g_i - target_i| / dw_i with g_i = norms_i / w_i (target held constant)
        raw = norms / self.weights.clamp_min(1e-8)
        grad_w = torch.sign(norms - target) * raw
        new = (self.weights - self.lr * grad_w).clamp_min(1e-3)
        self.weights.copy_(new * len(self.tasks) / new.sum())


def make_balancer(kind, tasks, weights=None, gradnorm_alpha=1.5):
    if kind == "fixed":
        return FixedWeights(tasks, weights)
    if kind == "uncertainty":
        return UncertaintyWeighting(tasks)
    if kind == "gradnorm":
        return GradNorm(tasks, alpha=gradnorm_alpha)
    raise ValueError(f"task balancing must be fixed, uncertainty or gradnorm, not {kind!r}")
