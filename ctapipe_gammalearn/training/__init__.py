"""Training γ-PhysNet: multitask loss, task balancing, the epoch loop (DDP, AMP, checkpoints)."""

from .balancing import FixedWeights, GradNorm, UncertaintyWeighting, make_balancer
from .checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, CheckpointError, Keys, load_checkpoint, save_checkpoint
from .loop import Trainer
from .losses import TASKS, MultitaskLoss
from .metrics import binned_metrics, summary_metrics
from .run import TrainingData, TrainingOptions, TrainingRun

__all__ = [
    "CHECKPOINT_BEST",
    "CHECKPOINT_LAST",
    "CheckpointError",
    "FixedWeights",
    "GradNorm",
    "Keys",
    "MultitaskLoss",
    "TASKS",
    "Trainer",
    "TrainingData",
    "TrainingOptions",
    "TrainingRun",
    "UncertaintyWeighting",
    "binned_metrics",
    "load_checkpoint",
    "make_balancer",
    "save_checkpoint",
    "summary_metrics",
]
