"""The runs -> one self-contained HTML page: controls, summary table, figures, configuration.

plotly.js is embedded once in the page's head; each figure is a ``<div>`` with its own
small script. Nothing is fetched: the page works from a file, offline.
"""

import base64
import html
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import __version__
from .assets import CSS, SCRIPT
from .configdiff import differences, run_settings
from .figures import ENERGY_PANELS, Style, energy_figure, roc_figure, training_figure
from .methods import CUT_KINDS, RunMetrics, observation_names, run_metrics, value_at
from .provenance import describe_activity

__all__ = ["RunView", "collect", "build_page", "PANEL_IDS"]

#: the id of every figure's <div>, in page order (the browser test checks each is drawn)
PANEL_IDS = ["panel-training", *(f"panel-{p}" for p in ENERGY_PANELS), "panel-roc"]


@dataclass
class RunView:
    """Everything the page shows of one run, read once."""

    name: str
    kind: str
    path: str
    report: dict | None
    metrics: RunMetrics
    settings: dict
    training_activity: dict | None = None
    benchmark_activity: dict | None = None
    theta2: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    theta2_methods: dict = field(default_factory=dict)


def collect(runs, level, provenance):
    """`RunView` of every run; reads each run's json files (and provenance logs) once."""
    views = []
    for run in runs:
        metrics = run.metrics
        report = run.report
        inputs = {}
        if report:
            inputs["training"] = report.get("training", {}).get("inputs", [])
        if metrics:
            inputs["benchmark"] = metrics.get("input_files", [])
        views.append(RunView(
            name=run.name,
            kind=run.kind,
            path=str(run.path),
            report=report,
            metrics=run_metrics(metrics, level),
            settings=run_settings(run),
            training_activity=provenance.activity_for(run.training_dir, run.path),
            benchmark_activity=provenance.activity_for(run.benchmark_dir, run.path),
            theta2=run.theta2_images(),
            inputs=inputs,
            theta2_methods=observation_names(metrics) if metrics else {},
        ))
    return views


def _esc(value):
    return html.escape(str(value), quote=True)


def _number(value, digits=3):
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "—", ""
    return f"{value:.{digits}g}", f"{value:.6g}"


def training_time(view):
    """The training tool's duration (provenance), else the sum of its epochs' training passes."""
    activity = view.training_activity or {}
    if isinstance(activity.get("duration_min"), int | float):
        return activity["duration_min"], f"{activity['duration_min']:.1f} min"
    report = view.report or {}
    n_train = report.get("training", {}).get("n_train")
    speeds = [e.get("images_per_s") for e in report.get("epochs", [])]
    if n_train and speeds and all(isinstance(s, int | float) and s > 0 for s in speeds):
        minutes = sum(n_train / s for s in speeds) / 60
        return minutes, f"≈{minutes:.1f} min (epoch passes)"
    return None, "—"


def _cut_kinds(views):
    present = {kind for v in views for rows in v.metrics.observation.values() for kind in rows}
    return [k for k in CUT_KINDS if k in present] + sorted(present - set(CUT_KINDS))


def _summary_rows(view, energies, kinds):
    report = view.report or {}
    training = report.get("training", {})
    base = [
        ("text", view.name, None), ("text", view.kind, None),
        ("text", training.get("preset", "—") if report else "—", None),
        ("num", *_number(training.get("epochs", len(report.get("epochs", []))) if report else None, 4)),
        ("num", *_number(training.get("n_train") if report else None, 7)),
    ]
    minutes, time_text = training_time(view)
    methods = view.metrics.methods or {"": None}
    rows = []
    for method, result in methods.items():
        cells = list(base)
        cells.insert(2, ("text", method or "—", None))
        curves = result.curves if result else {}
        overall = result.overall if result else {}
        cells.append(("num", *_number(overall.get("auc"))))
        for metric in ("angular_resolution_deg", "energy_resolution"):
            cells += [("num", *_number(value_at(curves.get(metric), e))) for e in energies]
        cells.append(("num", *_number(overall.get("background_efficiency"))))
        observed = view.metrics.observation.get(method, {})
        cells += [("num", *_number(observed.get(kind, {}).get("significance"))) for kind in kinds]
        cells.append(("num", time_text, "" if minutes is None else f"{minutes:.6g}"))
        rows.append((method, cells))
    return rows


def _summary_table(views, energies):
    kinds = _cut_kinds(views)
    efficiency = next((v.metrics.gamma_efficiency for v in views if v.metrics.gamma_efficiency), 0.7)
    heads = ["run", "what", "method", "preset", "epochs", "training events", "AUC"]
    heads += [f"θ68 [deg] at {e:g} TeV" for e in energies]
    heads += [f"ΔE/E at {e:g} TeV" for e in energies]
    heads += [f"protons kept at {efficiency:.0%} γ efficiency"]
    heads += [f"significance [σ], {k} cuts" for k in kinds]
    heads += ["training time"]
    out = ['<table class="sortable" id="summary"><thead><tr>']
    out += [f'<th class="{"text" if i < 4 else ""}">{_esc(h)}</th>' for i, h in enumerate(heads)]
    out.append("</tr></thead><tbody>")
    for view in views:
        for method, cells in _summary_rows(view, energies, kinds):
            attrs = f' data-run="{_esc(view.name)}"' + (f' data-method="{_esc(method)}"' if method else "")
            out.append(f"<tr{attrs}>")
            for kind, text, value in cells:
                sort = f' data-value="{_esc(value)}"' if value else ""
                out.append(f'<td class="{"text" if kind == "text" else ""}"{sort}>{_esc(text)}</td>')
            out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure_html(fig, div_id):
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _empty(div_id, title, why):
    return f'<div id="{div_id}" class="empty-panel"><div class="empty">{_esc(title)}: {_esc(why)}</div></div>'


def _energy_section(views, style):
    parts = []
    for panel, (title, _, _, _) in ENERGY_PANELS.items():
        curves = []
        for view in views:
            if panel == "sensitivity":
                curves += [(view.name, m, c) for m, c in view.metrics.sensitivity.items()]
            elif panel == "effective_area":
                curves += [(view.name, m, c) for m, c in view.metrics.effective_area.items()]
            else:
                curves += [(view.name, m, r.curves[panel]) for m, r in view.metrics.methods.items()
                           if panel in r.curves]
        fig = energy_figure(panel, curves, style)
        if fig.data:
            parts.append(f"<div>{_figure_html(fig, f'panel-{panel}')}</div>")
        else:
            why = {
                "sensitivity": "no run has one (point-like gammas and diffuse protons with simulation information)",
                "effective_area": "computed from DL2 only (give DL2 files, or --read-dl2)",
            }.get(panel, "no run measures it")
            parts.append(f"<div>{_empty(f'panel-{panel}', title, why)}</div>")
    return '<div class="grid">' + "".join(parts) + "</div>"


def _roc_section(views, style):
    rocs = [(v.name, m, r.roc, r.overall.get("auc")) for v in views for m, r in v.metrics.methods.items() if r.roc]
    if not rocs:
        return _empty("panel-roc", "ROC curves", "no run has gammas and protons")
    return _figure_html(roc_figure(rocs, style), "panel-roc")


def _training_section(views, style):
    histories = [(v.name, v.report.get("epochs", [])) for v in views if v.report and v.report.get("epochs")]
    if not histories:
        return _empty("panel-training", "training curves", "no run holds a training")
    note = ('<p class="note">train: solid, validation: dashed; one colour per run. '
            "Losses are those of the task balancing in use (see each run's configuration).</p>")
    return note + _figure_html(training_figure(histories, style), "panel-training")


def _theta2_method(view, file_name):
    """``theta2_<method>_<kind>.png`` -> the board's method and the kind of cuts."""
    stem, _, kind = file_name.removeprefix("theta2_").removesuffix(".png").rpartition("_")
    for name, method in view.theta2_methods.items():
        if re.sub(r"[^A-Za-z0-9_.-]+", "-", name.replace("/", "_")) == stem:
            return method, kind
    return stem, kind


def _theta2_section(views):
    blocks = []
    for view in views:
        if not view.theta2:
            continue
        figures = []
        for file_name, data in view.theta2.items():
            method, kind = _theta2_method(view, file_name)
            src = "data:image/png;base64," + base64.b64encode(data).decode()
            figures.append(f'<figure data-method="{_esc(method)}"><img alt="{_esc(file_name)}" src="{src}">'
                           f"<figcaption>{_esc(view.name)} · {_esc(method)} · {_esc(kind)} cuts</figcaption></figure>")
        blocks.append(f'<div data-run="{_esc(view.name)}"><h3>{_esc(view.name)}</h3>'
                      f'<div class="images">{"".join(figures)}</div></div>')
    if not blocks:
        return '<p class="empty">no run has a source detection (point-like gammas and protons)</p>'
    return "".join(blocks)


def _value_text(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return "—" if value is None else str(value)


def _config_section(views):
    diff = differences({v.name: v.settings for v in views})
    out = ["<h3>settings that differ between runs</h3>"]
    if not diff:
        out.append('<p class="note">none: every setting the runs record is the same</p>')
    else:
        out.append('<table id="config-differences"><thead><tr><th class="text">setting</th>')
        out += [f'<th class="text" data-run="{_esc(v.name)}">{_esc(v.name)}</th>' for v in views]
        out.append("</tr></thead><tbody>")
        for key, values in diff.items():
            out.append(f'<tr><td class="text">{_esc(key)}</td>')
            out += [f'<td class="text" data-run="{_esc(v.name)}">{_esc(_value_text(values.get(v.name)))}</td>'
                    if v.name in values else f'<td class="text" data-run="{_esc(v.name)}">—</td>' for v in views]
            out.append("</tr>")
        out.append("</tbody></table>")
    out.append("<h3>each run</h3>")
    for view in views:
        out.append(f'<details data-run="{_esc(view.name)}"><summary>{_esc(view.name)} '
                   f'<span class="note">({_esc(view.kind)}: {_esc(view.path)})</span></summary>')
        for what, activity in (("training", view.training_activity), ("benchmark", view.benchmark_activity)):
            described = describe_activity(activity)
            if described:
                out.append(f"<h4>{what}</h4><table>")
                out += [f'<tr><th class="text">{_esc(k)}</th><td class="text">{_esc(v)}</td></tr>'
                        for k, v in described.items() if v]
                out.append("</table>")
            elif (what == "training" and view.report) or (what == "benchmark" and view.metrics.level):
                out.append(f'<p class="note">{what}: no provenance log found (give it with --provenance)</p>')
        version = (view.report or {}).get("training", {}).get("package_version")
        if version:
            out.append(f'<p class="note">ctapipe_gammalearn {_esc(version)} (training)</p>')
        for what, files in view.inputs.items():
            listed = "\n".join(str(f) for f in files)
            out.append(f"<h4>{what} inputs ({len(files)})</h4><pre>{_esc(listed)}</pre>")
        settings = "\n".join(f"{k} = {_value_text(v)}" for k, v in sorted(view.settings.items()))
        out.append(f"<h4>settings</h4><pre>{_esc(settings)}</pre></details>")
    return "".join(out)


def _switches(kind, names, style):
    boxes = []
    for name in names:
        if kind == "runs":
            mark = f'<span class="swatch" style="border-color:{style.colors[name]}"></span>'
        else:
            dash = {"solid": "solid", "dash": "dashed", "dot": "dotted"}.get(style.dashes[name], "dashed")
            mark = f'<span class="swatch" style="border-color:#444;border-top-style:{dash}"></span>'
        boxes.append(f'<label><input type="checkbox" data-switch="{kind}" value="{_esc(name)}" checked>'
                     f"{mark}{_esc(name)}</label>")
    title = "runs" if kind == "runs" else "methods"
    buttons = (f'<button data-all="{kind}" data-on="1">all</button> '
               f'<button data-all="{kind}" data-on="0">none</button>')
    return f"<fieldset><legend>{title} {buttons}</legend>{''.join(boxes)}</fieldset>"


def _controls(views, methods, style, reference):
    options = ['<option value="">none (absolute values)</option>']
    options += [f'<option value="{_esc(v.name)}"{" selected" if v.name == reference else ""}>{_esc(v.name)}</option>'
                for v in views]
    return (f'<div id="controls">{_switches("runs", [v.name for v in views], style)}'
            f'{_switches("methods", methods, style)}'
            f'<fieldset><legend>reference run</legend><select id="reference">{"".join(options)}</select>'
            f'<div class="note" id="reference-note"></div></fieldset></div>')


def build_page(views, *, title="ctapipe-gammalearn experiment board", command="", reference=None,
               energies=(0.1, 1.0, 10.0)):
    """The whole page as a string."""
    from plotly.offline import get_plotlyjs

    methods = list(dict.fromkeys(
        m for v in views for m in [*v.metrics.methods, *v.metrics.sensitivity, *v.metrics.effective_area,
                                   *v.metrics.observation, *v.theta2_methods.values()]
    ))
    style = Style([v.name for v in views], methods)
    levels = sorted({v.metrics.level for v in views if v.metrics.level})
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>{_esc(title)}</h1>",
        f'<p class="note">{len(views)} run(s); metrics at the {"/".join(levels) or "—"} level; made {generated} '
        f"by ctapipe_gammalearn {_esc(__version__)}{': ' + _esc(command) if command else ''}</p>",
        _controls(views, methods, style, reference),
        "<h2>summary</h2>",
        '<p class="note">one row per run and method; θ68 and ΔE/E are those of the true-energy bin holding '
        "that energy; click a column to sort.</p>",
        _summary_table(views, energies),
        "<h2>training</h2>", _training_section(views, style),
        "<h2>against true energy</h2>", _energy_section(views, style),
        "<h2>ROC curves</h2>", _roc_section(views, style),
        "<h2>θ² of the simulated source detection</h2>", _theta2_section(views),
        "<h2>configuration and provenance</h2>", _config_section(views),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body>{''.join(body)}<script>{SCRIPT}</script></body></html>\n"
    )
