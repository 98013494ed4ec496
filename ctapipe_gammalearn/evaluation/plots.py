"""One figure per metric: every reconstructor overlaid, and its ratio to the reference below."""

import astropy.units as u
import matplotlib

matplotlib.use("Agg")  # files only; no display on batch machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .report import METRICS  # noqa: E402

__all__ = ["plot_metric", "plot_roc", "plot_sensitivity", "plot_theta2"]


def plot_metric(per_prefix, metric, reference, path, title=""):
    """``per_prefix``: {prefix: per-bin table}; writes ``path`` (PNG)."""
    kind, label, _ = METRICS[metric]
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(6.4, 5.6), gridspec_kw={"height_ratios": [3, 1.3]}, layout="constrained"
    )
    ref_values = np.asarray(per_prefix[reference][metric], dtype=float) if reference in per_prefix else None
    for prefix, table in per_prefix.items():
        low = table["true_energy_low"].to_value(u.TeV)
        high = table["true_energy_high"].to_value(u.TeV)
        center = table["true_energy_center"].to_value(u.TeV)
        values = np.asarray(table[metric], dtype=float)
        style = dict(ls="none", marker="o" if prefix == reference else "s", ms=4)
        top.errorbar(center, values, xerr=(center - low, high - center), label=prefix, **style)
        if ref_values is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                # bias can be ~0: compare differences there, ratios elsewhere
                other = values - ref_values if metric == "energy_bias" else values / ref_values
            bottom.errorbar(center, other, xerr=(center - low, high - center), **style)
    top.set_xscale("log")
    top.set_ylabel(label)
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend(fontsize="small")
    bottom.axhline(0 if metric == "energy_bias" else 1, color="gray", lw=1)
    bottom.set_ylabel(f"{'minus' if metric == 'energy_bias' else 'ratio to'}\n{reference}", fontsize="small")
    bottom.set_xlabel("true energy [TeV]")
    bottom.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_roc(level_metrics, kind, path, title=""):
    """Overall ROC curves of every classifier in ``level_metrics`` ({prefix: {kind: entry}})."""
    fig, ax = plt.subplots(figsize=(5.6, 5.2), layout="constrained")
    for prefix, kinds in level_metrics.items():
        entry = kinds.get(kind)
        if entry is None or not entry["roc"]["fpr"]:
            continue
        auc = entry["overall"]["auc"]
        ax.plot(entry["roc"]["fpr"], entry["roc"]["tpr"], label=f"{prefix} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="gray", lw=1, ls=":")
    ax.set_xlabel("proton efficiency")
    ax.set_ylabel("gamma efficiency")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sensitivity(per_method, path, reference=None, title=""):
    """E² × flux sensitivity of every method (``{method: sensitivity table}``),
    with fractions of the Crab flux for scale; writes ``path`` (PNG)."""
    from pyirf.spectral import CRAB_HEGRA

    unit = u.erg / (u.cm**2 * u.s)
    fig, ax = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
    for method, table in per_method.items():
        low = table["reco_energy_low"].to_value(u.TeV)
        high = table["reco_energy_high"].to_value(u.TeV)
        center = np.sqrt(low * high)
        values = table["energy_flux_sensitivity"].to_value(unit)
        marker = "o" if method == reference else "s"
        # hollow: no background event left after the cuts, limited by the signal count only
        empty = np.asarray(table["n_background"]) == 0
        style = dict(xerr=(center - low, high - center), ls="none", marker=marker, ms=4)
        line = ax.errorbar(center, np.where(empty, np.nan, values), label=method, **style)
        ax.errorbar(center, np.where(empty, values, np.nan), mfc="none", color=line[0].get_color(), **style)
    energy = np.geomspace(
        min(t["reco_energy_low"].min() for t in per_method.values()),
        max(t["reco_energy_high"].max() for t in per_method.values()),
        50,
    )
    for fraction in (1, 0.1, 0.01):
        crab = (fraction * CRAB_HEGRA(energy) * energy**2).to_value(unit)
        ax.plot(energy.to_value(u.TeV), crab, color="gray", lw=1, ls=":")
        ax.annotate(f"{fraction:g} Crab", (energy[0].to_value(u.TeV), crab[0]), fontsize="x-small", color="gray")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("reconstructed energy [TeV]")
    ax.set_ylabel("E² × flux sensitivity [erg cm⁻² s⁻¹]")
    ax.set_title(title + "\n(hollow: no background event left after the cuts)", fontsize="medium")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_theta2(theta2, cuts, path, title=""):
    """θ² of the on events and of the off events (scaled by α), with the θ cut (the median
    of the per-bin cuts of bins with events, the fixed cut if one) as a vertical line."""
    low = u.Quantity(theta2["theta2_low"], u.deg**2).value
    high = u.Quantity(theta2["theta2_high"], u.deg**2).value
    center = (low + high) / 2
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    ax.errorbar(center, theta2["n_on"], xerr=(high - low) / 2, ls="none", marker="o", ms=3, label="on")
    ax.step(np.append(low, high[-1]), np.append(theta2["n_off"], theta2["n_off"][-1]), where="post",
            color="gray", label="off (× α)")
    theta_cut = u.Quantity(cuts["theta_cut"], u.deg).value
    used = np.asarray(cuts["n_events"]) > 0
    finite = theta_cut[used & np.isfinite(theta_cut)] if np.any(used) else theta_cut[np.isfinite(theta_cut)]
    if len(finite):
        ax.axvline(np.median(finite) ** 2, color="black", ls="--", lw=1, label="θ cut")
    ax.set_xlabel("θ² [deg²]")
    ax.set_ylabel("events")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    plt.close(fig)
