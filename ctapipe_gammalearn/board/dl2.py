"""Benchmark metrics computed from DL2 files, for a run given as DL2 (or ``--read-dl2``).

The same functions as ``ctapipe-gammalearn-benchmark`` (evaluation/), in memory, in the
layout of its ``metrics.json``; plus the effective area, which the benchmark report does
not hold: point-like gammas with valid predictions of a method after the common quality
selection and a fixed gammaness cut, divided by the simulated showers (pyirf).
"""

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..compat import PARTICLE_TYPE_KEY
from .runs import BoardInputError

__all__ = ["GAMMANESS_CUT", "benchmark_effective_area", "dl2_metrics", "effective_area_entry"]

log = logging.getLogger(__name__)

#: gammaness cut of the effective area (the benchmark's threshold cuts use the same default)
GAMMANESS_CUT = 0.5


def _loaded(paths, quality_criteria):
    from ..evaluation.events import BenchmarkInputError, load_events, quality_columns, select_events

    try:
        tel, sub, reconstructors = load_events(paths, parameter_columns=quality_columns(quality_criteria))
        tel, sub = select_events(tel, sub, quality_criteria)
    except BenchmarkInputError as err:
        raise BoardInputError(f"{', '.join(str(p) for p in paths)}: {err}") from None
    return tel, sub, reconstructors


def dl2_metrics(paths, bins, quality_criteria=None, gamma_efficiency=0.7, background_ids=(101,), min_events=10,
                gammaness_cut=GAMMANESS_CUT, detection=True):
    """``(metrics, theta2_images)``: the benchmark of ``paths`` as ``metrics.json`` would hold it
    (with ``effective_area``), and ``{file name: PNG bytes}`` of its θ² plots."""
    from ..evaluation.events import DEFAULT_QUALITY_CRITERIA
    from ..evaluation.report import benchmark_all, choose_references, to_json
    from ..evaluation.writer import report_header

    criteria = list(quality_criteria or DEFAULT_QUALITY_CRITERIA)
    tel, sub, reconstructors = _loaded(paths, criteria)
    references = choose_references(reconstructors)
    metrics, _ = benchmark_all(tel, sub, reconstructors, bins, gamma_efficiency=gamma_efficiency,
                               background_ids=tuple(background_ids), min_events=min_events)
    header = report_header(paths, bins, criteria, gamma_efficiency, background_ids, min_events, len(sub), references)
    sensitivity = _sensitivity(paths, sub, reconstructors, references, bins)
    if sensitivity:
        metrics["sensitivity"] = sensitivity
    images = {}
    if detection:
        rows, images = _detection(paths, sub, tel, reconstructors, references)
        if rows:
            metrics["observation"] = rows
    area = effective_area_entry(paths, sub, reconstructors, references, bins, gammaness_cut)
    if area:
        metrics["effective_area"] = area
    return json.loads(to_json(metrics, **header)), images


def _sensitivity(paths, sub, reconstructors, references, bins):
    from ..evaluation.sensitivity import SensitivityUnavailable, sensitivity_all, sensitivity_entry

    try:
        per_method, _ = sensitivity_all(paths, sub, reconstructors, references, bins)
    except SensitivityUnavailable as err:
        log.info("no sensitivity for %s: %s", paths[0], err)
        return None
    return sensitivity_entry(per_method)


def _detection(paths, sub, tel, reconstructors, references):
    """Rows of the simulated 1 h Crab observation and the PNGs of its θ² plots."""
    from ..evaluation.detection import DetectionInputError
    from ..evaluation.observation import ObservationUnavailable, observation_entry, simulated_observations
    from ..evaluation.plots import plot_theta2
    from ..evaluation.writer import file_stem

    try:
        rows, details = simulated_observations(paths, sub, reconstructors, references, tel_events=tel)
    except (ObservationUnavailable, DetectionInputError) as err:
        log.info("no observation for %s: %s", paths[0], err)
        return [], {}
    images = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method, kinds in details.items():
            for kind, entry in kinds.items():
                name = f"theta2_{file_stem(method)}_{kind}.png"
                plot_theta2(entry["theta2"], entry["cuts"], Path(tmp) / name, title=f"{method}, {kind} cuts")
                images[name] = (Path(tmp) / name).read_bytes()
    return observation_entry(rows), images


def effective_area_entry(paths, sub_events, reconstructors, references, bins, gammaness_cut=GAMMANESS_CUT):
    """``{"gammaness_cut", "methods": {name: {"reconstructors", "bins"}}}`` of every method of the
    benchmark (`method_triples`), from the point-like gamma files; None without them."""
    import astropy.units as u
    from pyirf.irf import effective_area_per_energy

    from ..evaluation.events import reconstructor_events
    from ..evaluation.sensitivity import SensitivityUnavailable, method_triples, simulation_inputs

    try:
        indices, simulated = simulation_inputs(paths, sub_events)["gammas"]
    except SensitivityUnavailable as err:
        log.info("no effective area for %s: %s", paths[0], err)
        return None
    gammas = sub_events[np.isin(np.asarray(sub_events["file_index"]), indices)]
    methods = {}
    for name, triple in method_triples(reconstructors, references).items():
        gammaness = reconstructor_events(gammas, triple["gammaness"], PARTICLE_TYPE_KEY, "stereo")
        keep = np.asarray(gammaness["valid"]) & (np.nan_to_num(np.asarray(gammaness["gammaness"])) > gammaness_cut)
        for kind in ("energy", "geometry"):
            keep &= np.asarray(reconstructor_events(gammas, triple[kind], kind, "stereo")["valid"])
        with np.errstate(invalid="ignore", divide="ignore"):  # bins without simulated showers
            area = effective_area_per_energy(gammaness[keep], simulated, bins).to_value(u.m**2)
        edges = bins.to_value(u.TeV)
        methods[name] = {
            "reconstructors": dict(triple),
            "bins": [{"energy_min_tev": float(lo), "energy_max_tev": float(hi), "effective_area_m2": float(a)}
                     for lo, hi, a in zip(edges[:-1], edges[1:], area, strict=True)],
        }
    return {"gammaness_cut": gammaness_cut, "methods": methods} if methods else None


def benchmark_effective_area(run, bins, quality_criteria=None, gammaness_cut=GAMMANESS_CUT):
    """The effective area of a benchmark run, from the DL2 files its header names (``--read-dl2``)."""
    from ..evaluation.events import DEFAULT_QUALITY_CRITERIA
    from ..evaluation.report import choose_references

    paths = run.benchmark_inputs()
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        raise BoardInputError(f"{run.benchmark_dir}: its DL2 input {(missing or ['(none)'])[0]} cannot be read")
    header = run.metrics or {}
    criteria = header.get("quality_criteria") or quality_criteria or DEFAULT_QUALITY_CRITERIA
    if header.get("energy_bins_tev"):  # the benchmark's own bins, so that the panels line up
        import astropy.units as u

        bins = u.Quantity(header["energy_bins_tev"], u.TeV)
    _, sub, reconstructors = _loaded(paths, [tuple(c) for c in criteria])
    return effective_area_entry(paths, sub, reconstructors, choose_references(reconstructors), bins, gammaness_cut)
