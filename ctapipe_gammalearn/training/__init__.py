"""Training γ-PhysNet: multitask loss, task balancing, the epoch loop (DDP, AMP, checkpoints)."""

from .balancing import FixedWeights, GradNorm, UncertaintyWeighting, make_balancer
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import Trainer
from .losses import TASKS, MultitaskLoss
from .metrics import binned_metrics, summary_metrics

__all__ = [
    "FixedWeights",
    "GradNorm",
    "MultitaskLoss",
    "TASKS",
    "Trainer",
    "UncertaintyWeighting",
    "binned_metrics",
    "load_checkpoint",
    "make_balancer",
    "save_checkpoint",
    "summary_metrics",
]
