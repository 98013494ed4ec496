"""The benchmark report folder: ``metrics.json``, one PNG per metric and section, the sensitivity.

Layout: ``metrics.json`` (header entries first, see `report_header`), then
``<section>_<metric>.png`` for every section of the tables (``mono``,
``mono_<telescope type>``, ``stereo``) and metric with a reconstructor,
``<section>_roc.png`` where a section has gammas and background, and
``sensitivity.png`` where a sensitivity was computed, and for the source detection
``theta2_<method>_<kind>.png`` and ``cuts.ecsv`` (the cuts of a simulated observation).
"""

import re

import astropy.units as u
from tqdm.auto import tqdm

from .. import __version__
from ..atomic import atomic_dir
from ..compat import PARTICLE_TYPE_KEY
from .observation import CUTS_FILE, write_cuts
from .plots import plot_metric, plot_roc, plot_sensitivity, plot_theta2
from .report import METRICS, section_level, section_metrics, to_json
from .sensitivity import OBSERVATION_TIME

__all__ = ["METRICS_JSON", "SENSITIVITY_PNG", "file_stem", "report_header", "write_report"]

METRICS_JSON = "metrics.json"
SENSITIVITY_PNG = "sensitivity.png"


def report_header(
    input_files, bins, quality_criteria, gamma_efficiency, background_ids, min_events, n_selected, references
) -> dict:
    """The settings a report was made with: the first entries of ``metrics.json``."""
    return {
        "ctapipe_gammalearn_version": __version__,
        "input_files": [str(p) for p in input_files],
        "energy_bins_tev": bins.to_value(u.TeV).tolist(),
        "quality_criteria": [list(c) for c in quality_criteria],
        "gamma_efficiency": gamma_efficiency,
        "background_ids": list(background_ids),
        "min_events": min_events,
        "n_selected": n_selected,
        "references": references,
    }


def write_report(
    output_dir, metrics, tables, references, header=None, sensitivity_tables=None, progress=False, overwrite=True,
    observation=None, cuts_file=True,
) -> list:
    """Write the report folder, all of it or nothing (an old one stays until the new one is complete).

    ``metrics`` and ``tables`` as from `benchmark_all`, ``references`` as from
    `choose_references`, ``sensitivity_tables`` as from `sensitivity_all`, ``observation``
    the details of `.observation.simulated_observations` / `observed_observations`
    (``{method: {kind: {"cuts", "theta2"}}}``): one ``theta2_<method>_<kind>.png`` each and,
    with ``cuts_file``, their cuts in ``cuts.ecsv``.
    Returns the names of the files written, ``metrics.json`` first.
    """
    with atomic_dir(output_dir, overwrite=overwrite) as tmp:
        (tmp / METRICS_JSON).write_text(to_json(metrics, **(header or {})))
        written = [METRICS_JSON]
        written += _metric_plots(tmp, tables, references, progress)
        written += _roc_plots(tmp, tables, metrics)
        if sensitivity_tables:
            title = f"point source, {OBSERVATION_TIME:g}"
            plot_sensitivity(sensitivity_tables, tmp / SENSITIVITY_PNG, reference="reference", title=title)
            written.append(SENSITIVITY_PNG)
        if observation:
            written += _observation_files(tmp, observation, cuts_file)
    return written


def _observation_files(directory, details, cuts_file):
    written = []
    if cuts_file:
        write_cuts(directory / CUTS_FILE, details)
        written.append(CUTS_FILE)
    for method, kinds in details.items():
        for kind, entry in kinds.items():
            name = f"theta2_{file_stem(method)}_{kind}.png"
            plot_theta2(entry["theta2"], entry["cuts"], directory / name, title=f"{method}, {kind} cuts")
            written.append(name)
    return written


def _metric_plots(directory, tables, references, progress):
    jobs = [
        (section, metric)
        for section in tables
        for metric, (kind, _, _) in METRICS.items()
        if tables[section][kind]
    ]
    written = []
    for section, metric in tqdm(jobs, desc="plots", disable=not progress):
        kind = METRICS[metric][0]
        reference = references[section_level(section)].get(kind)
        name = f"{file_stem(section)}_{metric}.png"
        plot_metric(tables[section][kind], metric, reference, directory / name, title=section)
        written.append(name)
    return written


def _roc_plots(directory, tables, metrics):
    written = []
    for section in tables:
        measured = section_metrics(metrics, section)
        # a section with one particle type has no ROC curve to draw
        if any(kinds.get(PARTICLE_TYPE_KEY, {}).get("roc", {}).get("fpr") for kinds in measured.values()):
            name = f"{file_stem(section)}_roc.png"
            plot_roc(measured, PARTICLE_TYPE_KEY, directory / name, title=section)
            written.append(name)
    return written


def file_stem(section):
    """``mono/LST_LST_LSTCam`` -> ``mono_LST_LST_LSTCam``: a plain file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", section.replace("/", "_"))
