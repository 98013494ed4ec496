"""The interactive figures (plotly): every trace carries ``meta = {"run", "method", "y"}``.

The page's script switches traces by ``meta.run`` and ``meta.method`` and, for the
figures against true energy, recomputes ``y`` from ``meta.y`` as the ratio (or, for the
bias, the difference) to the reference run. Legends are off: the page's run and method
switches show the colours and line styles, and hovering names the trace.
"""

import math

from .methods import ENERGY_METRICS

__all__ = [
    "ENERGY_PANELS",
    "TRAINING_PANELS",
    "Style",
    "energy_figure",
    "roc_figure",
    "training_figure",
]

#: panel key -> (title, y label, log y, compare mode); the metrics of methods.ENERGY_METRICS first
ENERGY_PANELS = {
    **{metric: (label, label, log, "difference" if metric == "energy_bias" else "ratio")
       for metric, (_, label, log) in ENERGY_METRICS.items()},
    "effective_area": ("effective area", "effective area [m²]", True, "ratio"),
    "sensitivity": ("sensitivity (50 h, point source)", "E² dN/dE [erg s⁻¹ cm⁻²]", True, "ratio"),
}
#: training panels: (title, report.json epoch keys as (key, label, dash))
TRAINING_PANELS = {
    "loss": ("total loss", (("train_loss", "train", "solid"), ("val_loss", "validation", "dash"))),
    "particle": ("particle loss", (("train_particle", "train", "solid"), ("val_particle", "validation", "dash"))),
    "energy": ("energy loss", (("train_energy", "train", "solid"), ("val_energy", "validation", "dash"))),
    "direction": ("direction loss", (("train_direction", "train", "solid"), ("val_direction", "validation", "dash"))),
    "impact": ("impact loss", (("train_impact", "train", "solid"), ("val_impact", "validation", "dash"))),
    "lr": ("learning rate", (("lr", "learning rate", "solid"),)),
    "images_per_s": ("training speed [images/s]", (("images_per_s", "images/s", "solid"),)),
}
#: at most this many points per ROC curve on the page (the json may hold one per event)
ROC_POINTS = 200
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star")


class Style:
    """One colour per run and one line style per method, the same in every figure."""

    def __init__(self, run_names, method_names):
        from plotly.colors import qualitative

        palette = qualitative.Plotly + qualitative.Dark24 + qualitative.Light24
        self.colors = {name: palette[i % len(palette)] for i, name in enumerate(run_names)}
        self.dashes = {name: _DASHES[i % len(_DASHES)] for i, name in enumerate(method_names)}
        self.symbols = {name: _SYMBOLS[i % len(_SYMBOLS)] for i, name in enumerate(method_names)}


def _text(value):
    """Plain text for a hover template: plotly reads %{...} and <...> in it."""
    return str(value).replace("%", "%%").replace("<", "&lt;").replace("{", "(").replace("}", ")")


def _finite(values):
    return [v if isinstance(v, int | float) and math.isfinite(v) else None for v in values]


def _layout(fig, title, ytitle, log_x=True, log_y=False, compare=None, height=360):
    fig.update_layout(
        title=dict(text=title, x=0.02, font=dict(size=14)),
        height=height,
        margin=dict(l=60, r=15, t=40, b=45),
        showlegend=False,
        hovermode="closest",
        template="plotly_white",
        meta={"compare": compare, "ytitle": ytitle},
    )
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_yaxes(title_text=ytitle, type="log" if log_y else "linear")
    return fig


def energy_figure(panel, curves, style):
    """One panel against energy; ``curves``: ``[(run, method, Curve)]``."""
    import plotly.graph_objects as go

    title, ylabel, log_y, compare = ENERGY_PANELS[panel]
    fig = go.Figure()
    for run, method, curve in curves:
        y = _finite(curve.values)
        if not any(v is not None for v in y):
            continue
        fig.add_trace(go.Scatter(
            x=curve.centers, y=y, mode="lines+markers", name=f"{run} · {method}",
            line=dict(color=style.colors[run], dash=style.dashes[method], width=2),
            marker=dict(symbol=style.symbols[method], size=7),
            meta={"run": run, "method": method, "y": y},
            customdata=[[lo, hi] for lo, hi in zip(curve.low, curve.high, strict=True)],
            hovertemplate=f"<b>{_text(run)}</b> · {_text(method)}<br>"
                          "%{customdata[0]:.3g} – %{customdata[1]:.3g} TeV<br>%{y:.4g}<extra></extra>",
        ))
    xtitle = "reconstructed energy [TeV]" if panel == "sensitivity" else "true energy [TeV]"
    fig = _layout(fig, title, ylabel, log_y=log_y, compare=compare)
    fig.update_xaxes(title_text=xtitle)
    return fig


def _downsampled(fpr, tpr, n=ROC_POINTS):
    """At most ``n`` points of a ROC curve, spread evenly along it."""
    if len(fpr) <= n:
        return list(fpr), list(tpr)
    step = (len(fpr) - 1) / (n - 1)
    keep = sorted({round(i * step) for i in range(n)})
    return [fpr[i] for i in keep], [tpr[i] for i in keep]


def roc_figure(rocs, style):
    """``rocs``: ``[(run, method, {"fpr", "tpr"}, auc)]``."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#bbb", dash="dot"),
                             hoverinfo="skip", meta={"run": "", "method": ""}))
    for run, method, roc, auc in rocs:
        fpr, tpr = _downsampled(roc["fpr"], roc["tpr"])
        auc_text = f", AUC {auc:.3f}" if isinstance(auc, int | float) else ""
        fig.add_trace(go.Scatter(
            x=fpr, y=tpr, mode="lines", name=f"{run} · {method}",
            line=dict(color=style.colors[run], dash=style.dashes[method], width=2),
            meta={"run": run, "method": method},
            hovertemplate=f"<b>{_text(run)}</b> · {_text(method)}{auc_text}<br>"
                          "proton efficiency %{x:.3g}<br>gamma efficiency %{y:.3g}<extra></extra>",
        ))
    fig = _layout(fig, "ROC curves", "gamma efficiency", log_x=False, height=420)
    fig.update_xaxes(title_text="proton efficiency", range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    return fig


def training_figure(histories, style):
    """Training curves against epoch: ``histories``: ``[(run, report.json "epochs")]``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = list(TRAINING_PANELS.items())
    columns = 4
    rows = math.ceil(len(panels) / columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[title for _, (title, _) in panels],
                        horizontal_spacing=0.06, vertical_spacing=0.14)
    for index, (panel, (_, series)) in enumerate(panels):
        row, col = index // columns + 1, index % columns + 1
        for run, epochs in histories:
            for key, label, dash in series:
                points = [(e["epoch"], e.get(key)) for e in epochs if isinstance(e.get(key), int | float)]
                if not points:
                    continue
                fig.add_trace(go.Scatter(
                    x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                    name=f"{run} · {label}", line=dict(color=style.colors[run], dash=dash, width=2),
                    marker=dict(size=5), meta={"run": run, "method": "", "panel": panel},
                    hovertemplate=f"<b>{_text(run)}</b> · {_text(label)}<br>epoch %{{x}}<br>%{{y:.4g}}<extra></extra>",
                ), row=row, col=col)
        if panel == "lr":
            fig.update_yaxes(type="log", row=row, col=col)
        fig.update_xaxes(title_text="epoch", row=row, col=col)
    fig.update_layout(height=300 * rows + 40, margin=dict(l=50, r=15, t=50, b=45), showlegend=False,
                      template="plotly_white", hovermode="closest", meta={"compare": None})
    fig.update_annotations(font_size=13)
    return fig
