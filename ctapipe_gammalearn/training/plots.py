"""PNG plots of a training run: loss curves and validation performance per energy bin."""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402

__all__ = ["plot_losses", "plot_performance"]


def _save(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_losses(epochs, path, untrained_val_loss=None):
    """Train and validation loss per epoch (``epochs``: report.json "epochs" list);
    the untrained network's validation loss, when given, at epoch 0."""
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [e["epoch"] for e in epochs]
    ax.plot(x, [e["train_loss"] for e in epochs], "o-", label="train")
    if any(e.get("val_loss") is not None for e in epochs):
        val = [e.get("val_loss", np.nan) for e in epochs]
        if untrained_val_loss is not None:
            x, val = [0, *x], [untrained_val_loss, *val]
        ax.plot(x, val, "s-", label="validation (epoch 0: untrained)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    _save(fig, path)


def plot_performance(rows, path):
    """Energy resolution, angular resolution and ROC AUC per true-energy bin."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    if rows:
        low = np.array([r["log10_energy_low"] for r in rows])
        high = np.array([r["log10_energy_high"] for r in rows])
        centre, half = 10 ** ((low + high) / 2), (10**high - 10**low) / 2
        for ax, key, label in zip(
            axes,
            ["energy_resolution", "angular_resolution_deg", "roc_auc"],
            ["energy resolution (68 %)", "angular resolution (68 %) [deg]", "ROC AUC"],
        ):
            ax.errorbar(centre, [r[key] for r in rows], xerr=half, fmt="o")
            ax.set_xscale("log")
            ax.set_xlabel("true energy [TeV]")
            ax.set_ylabel(label)
    fig.suptitle("validation set")
    _save(fig, path)
