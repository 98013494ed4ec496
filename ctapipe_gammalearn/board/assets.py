"""The page's style sheet and script, embedded in it (the page fetches nothing).

The script keeps one state, the runs and methods switched on and the reference run,
and applies it to every plotly figure (traces by ``meta.run`` / ``meta.method``,
``y`` recomputed from ``meta.y`` where the figure's ``layout.meta.compare`` asks) and
to every element with ``data-run`` / ``data-method`` (table rows, θ² images, columns).
"""

__all__ = ["CSS", "SCRIPT"]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 1.2em 2em; color: #222; }
h1 { font-size: 1.5em; margin: 0.6em 0 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.note { color: #666; font-size: 0.9em; }
#controls { position: sticky; top: 0; background: #fafafa; border: 1px solid #ddd; padding: 0.5em 0.8em;
  z-index: 10; display: flex; flex-wrap: wrap; gap: 0.4em 1.6em; align-items: flex-start; }
#controls fieldset { border: none; margin: 0; padding: 0; max-height: 8.5em; overflow-y: auto; }
#controls legend { font-weight: 600; font-size: 0.9em; }
#controls label { margin-right: 0.9em; white-space: nowrap; font-size: 0.9em; }
.swatch { display: inline-block; width: 1.8em; height: 0; border-top: 3px solid; vertical-align: middle;
  margin: 0 0.3em; }
button { font-size: 0.8em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 0.6em; }
.grid > div { border: 1px solid #eee; }
.empty { color: #999; font-style: italic; padding: 1em; }
.images { display: flex; flex-wrap: wrap; gap: 0.6em; } .images figure { margin: 0; }
.images img { max-width: 420px; border: 1px solid #eee; } figcaption { font-size: 0.8em; color: #555; }
details { margin: 0.3em 0; } summary { cursor: pointer; font-weight: 600; }
pre { white-space: pre-wrap; font-size: 0.8em; background: #f7f7f7; padding: 0.4em; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var state = { runs: {}, methods: {}, reference: "" };

  function isShown(run, method) {
    return (!run || state.runs[run] !== false) && (!method || state.methods[method] !== false);
  }

  function compared(gd, trace, mode) {
    var raw = (trace.meta && trace.meta.y) || trace.y;
    if (!state.reference) { return raw; }
    var ref = null;
    gd.data.forEach(function (t) {
      if (t.meta && t.meta.run === state.reference && t.meta.method === trace.meta.method) { ref = t; }
    });
    if (!ref) { return raw.map(function () { return null; }); }
    var byX = {};
    ref.x.forEach(function (x, i) { byX[Number(x).toPrecision(6)] = ref.meta.y[i]; });
    return raw.map(function (v, i) {
      var r = byX[Number(trace.x[i]).toPrecision(6)];
      if (v === null || r === null || r === undefined) { return null; }
      if (mode === "difference") { return v - r; }
      return r === 0 ? null : v / r;
    });
  }

  function refreshPlot(gd) {
    if (!gd.data) { return; }
    var meta = (gd.layout && gd.layout.meta) || {};
    var indices = [], visible = [], ys = [];
    gd.data.forEach(function (t, i) {
      var m = t.meta || {};
      indices.push(i);
      visible.push(isShown(m.run, m.method));
      if (meta.compare && m.y) { ys.push(compared(gd, t, meta.compare)); } else { ys.push(t.y); }
    });
    var update = { visible: visible };
    if (meta.compare) { update.y = ys; }
    Plotly.restyle(gd, update, indices);
    if (meta.compare) {
      var sign = meta.compare === "difference" ? " − " : " / ";
      var title = state.reference ? meta.ytitle + sign + state.reference : meta.ytitle;
      Plotly.relayout(gd, { "yaxis.title.text": title });
    }
  }

  function refresh() {
    document.querySelectorAll(".js-plotly-plot").forEach(refreshPlot);
    document.querySelectorAll("[data-run], [data-method]").forEach(function (el) {
      el.style.display = isShown(el.dataset.run, el.dataset.method) ? "" : "none";
    });
    var note = document.getElementById("reference-note");
    if (note) {
      note.textContent = state.reference
        ? "against true energy: ratios to " + state.reference + " (bias: difference)" : "";
    }
  }

  function bindSwitches(kind) {
    document.querySelectorAll("input[data-switch='" + kind + "']").forEach(function (box) {
      state[kind][box.value] = box.checked;
      box.addEventListener("change", function () { state[kind][box.value] = box.checked; refresh(); });
    });
    document.querySelectorAll("button[data-all='" + kind + "']").forEach(function (button) {
      button.addEventListener("click", function () {
        var on = button.dataset.on === "1";
        document.querySelectorAll("input[data-switch='" + kind + "']").forEach(function (box) {
          box.checked = on; state[kind][box.value] = on;
        });
        refresh();
      });
    });
  }

  function sortable(table) {
    table.querySelectorAll("th").forEach(function (th, column) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var descending = th.dataset.order === "asc";
        th.dataset.order = descending ? "desc" : "asc";
        rows.sort(function (a, b) {
          var x = a.cells[column].dataset.value || a.cells[column].textContent;
          var y = b.cells[column].dataset.value || b.cells[column].textContent;
          var nx = parseFloat(x), ny = parseFloat(y), c;
          if (isNaN(nx) && isNaN(ny)) { c = x.localeCompare(y); }
          else if (isNaN(nx)) { c = 1; } else if (isNaN(ny)) { c = -1; } else { c = nx - ny; }
          return descending ? -c : c;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  window.addEventListener("load", function () {
    bindSwitches("runs");
    bindSwitches("methods");
    var select = document.getElementById("reference");
    if (select) {
      state.reference = select.value;
      select.addEventListener("change", function () { state.reference = select.value; refresh(); });
    }
    document.querySelectorAll("table.sortable").forEach(sortable);
    refresh();
    document.body.dataset.ready = "1";
  });
})();
"""
