"""``--png``: a static summary figure for slides and papers (matplotlib), written atomically."""

import math

from ..atomic import atomic_path

__all__ = ["PNG_PANELS", "write_summary_png"]

#: the resolution and AUC panels of the summary figure
PNG_PANELS = {
    "angular_resolution_deg": "angular resolution (68%) [deg]",
    "energy_resolution": "energy resolution",
    "energy_bias": "energy bias",
    "auc": "ROC AUC",
}
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "D", "^", "v", "x")


def write_summary_png(views, path, dpi=130):
    """A 2×2 grid of the `PNG_PANELS`, every run (colour) and method (line style) overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(m for v in views for m in v.metrics.methods))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained", sharex=True)
    for ax, (metric, label) in zip(axes.flat, PNG_PANELS.items(), strict=True):
        for i, view in enumerate(views):
            for j, method in enumerate(methods):
                result = view.metrics.methods.get(method)
                curve = result.curves.get(metric) if result else None
                if curve is None:
                    continue
                points = [(x, y) for x, y in zip(curve.centers, curve.values, strict=True)
                          if isinstance(y, int | float) and math.isfinite(y)]
                if points:
                    ax.plot(*zip(*points, strict=True), color=colors[i % len(colors)],
                            ls=_LINESTYLES[j % len(_LINESTYLES)], marker=_MARKERS[j % len(_MARKERS)], ms=4,
                            label=f"{view.name} · {method}")
        ax.set_xscale("log")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if metric == "energy_bias":
            ax.axhline(0, color="gray", lw=0.8)
    for ax in axes[1]:
        ax.set_xlabel("true energy [TeV]")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize="small")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
