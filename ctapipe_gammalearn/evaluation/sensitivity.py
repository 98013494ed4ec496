"""Point-like source sensitivity of each method, with cuts optimised by pyirf
through ctapipe.irf: point-like gammas weighted to the Crab (HEGRA), diffuse
protons to the IRF-document proton spectrum.

Inputs are the subarray events of the common selection; the simulated showers
(``/configuration/simulation/run``, ``/simulation/service/shower_distribution``)
and the pointing come from each file.
"""

import logging
import operator

import astropy.units as u
import numpy as np
import tables
from astropy.table import QTable, Table
from ctapipe.io import TableLoader, read_table
from ctapipe.io.hdf5dataformat import OBSERVATION_BLOCK_TABLE, SIMULATION_RUN_TABLE
from pyirf.cuts import evaluate_binned_cut
from pyirf.simulations import SimulatedEventsInfo
from pyirf.spectral import PowerLaw

from ..compat import PARTICLE_TYPE_KEY
from .events import GAMMA_ID, PROTON_ID, reconstructor_events

__all__ = [
    "OBSERVATION_TIME",
    "ALPHA",
    "FOV_OFFSET_MAX",
    "SensitivityUnavailable",
    "method_triples",
    "simulation_inputs",
    "point_source_sensitivity",
    "sensitivity_all",
    "sensitivity_entry",
    "format_sensitivity",
]

log = logging.getLogger(__name__)

OBSERVATION_TIME = 50 * u.h
#: on/off region size ratio (pyirf and ctapipe.irf default)
ALPHA = 0.2
#: background taken from reconstructed offsets below this (pyirf's example analysis)
FOV_OFFSET_MAX = 1 * u.deg
_SENSITIVITY_COLUMNS = (
    "N_SIGNAL",
    "N_SIGNAL_WEIGHTED",
    "N_BACKGROUND",
    "N_BACKGROUND_WEIGHTED",
    "SIGNIFICANCE",
    "RELATIVE_SENSITIVITY",
    "FLUX_SENSITIVITY",
    "ENERGY_FLUX_SENSITIVITY",
)
#: suffixes of a method's prefixes, stripped to pair them (GammaPhysNetEnergy -> GammaPhysNet)
_SUFFIXES = ("Classifier", "Regressor", "Reconstructor", "Energy", "Geometry")


class SensitivityUnavailable(Exception):
    """The inputs do not allow a sensitivity (one-line reason)."""


def _irf():
    """ctapipe's IRF helpers, imported on use: they are young and may move between
    ctapipe releases, which must cost the sensitivity curve only, not the report."""
    try:
        from ctapipe import irf
        from ctapipe.io import DL2EventLoader
        from ctapipe.irf import Sensitivity2dMaker, Spectra
    except ImportError as err:
        raise SensitivityUnavailable(f"this ctapipe has no compatible IRF helpers ({err})") from None
    # the G/H cut optimiser with a percentile theta cut: named so from ctapipe 0.29 on,
    # where PointSourceSensitivityOptimizer also scans multiplicity and theta cuts
    optimizer = getattr(irf, "PointSourceSensitivityGhOptimizer", None) or irf.PointSourceSensitivityOptimizer
    return DL2EventLoader, optimizer, Sensitivity2dMaker, Spectra


def _stem(prefix):
    for suffix in _SUFFIXES:
        if prefix.endswith(suffix) and len(prefix) > len(suffix):
            return prefix[: -len(suffix)]
    return prefix


def method_triples(reconstructors, references):
    """``{name: {"gammaness": p, "energy": p, "geometry": p}}``: the reference
    triple (named ``reference``) and every triple whose prefixes share a stem
    (``GammaPhysNetClassifier``/``Energy``/``Geometry`` -> ``GammaPhysNet``)."""
    found = reconstructors.get("stereo", {})
    methods = {}
    refs = references.get("stereo", {})
    if all(kind in refs for kind in ("energy", "geometry", PARTICLE_TYPE_KEY)):
        methods["reference"] = {
            "gammaness": refs[PARTICLE_TYPE_KEY],
            "energy": refs["energy"],
            "geometry": refs["geometry"],
        }
    for clf in found.get(PARTICLE_TYPE_KEY, []):
        stem = _stem(clf)
        energy = [p for p in found.get("energy", []) if _stem(p) == stem]
        geometry = [p for p in found.get("geometry", []) if _stem(p) == stem]
        triple = {
            "gammaness": clf,
            "energy": energy[0] if energy else None,
            "geometry": geometry[0] if geometry else None,
        }
        if None not in triple.values() and triple not in methods.values():
            methods[stem] = triple
    return methods


def _simulation_info(path):
    """pyirf SimulatedEventsInfo of one file, or None without simulation configuration."""
    with tables.open_file(path) as h5:
        if SIMULATION_RUN_TABLE not in h5:
            return None
    DL2EventLoader, _, _, Spectra = _irf()
    loader_component = DL2EventLoader(file=path, target_spectrum=Spectra.CRAB_HEGRA)
    with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
        try:
            sim_info, _ = loader_component.get_simulation_information(loader, OBSERVATION_TIME)
        except NotImplementedError as err:  # runs simulated differently in one file
            raise SensitivityUnavailable(f"{path}: {err}") from None
    return sim_info


def _combine(infos, what):
    """One SimulatedEventsInfo for several files simulated alike (showers summed)."""
    first = infos[0]
    for other in infos[1:]:
        for name in ("energy_min", "energy_max", "max_impact", "spectral_index", "viewcone_min", "viewcone_max"):
            if not np.isclose(u.Quantity(getattr(other, name)).value, u.Quantity(getattr(first, name)).value):
                raise SensitivityUnavailable(f"the {what} files differ in their simulated {name}")
    return SimulatedEventsInfo(
        n_showers=int(sum(info.n_showers for info in infos)),
        energy_min=first.energy_min,
        energy_max=first.energy_max,
        max_impact=first.max_impact,
        spectral_index=first.spectral_index,
        viewcone_min=first.viewcone_min,
        viewcone_max=first.viewcone_max,
    )


def simulation_inputs(paths, sub_events):
    """Which files are point-like gammas and diffuse protons, with their simulations.

    Returns ``{"gammas": (file_indices, SimulatedEventsInfo), "protons": (...)}``;
    raises `SensitivityUnavailable` when either is missing. Files of mixed or
    other particles (diffuse gammas) are not used.
    """
    files = {"gammas": [], "protons": []}
    primary_id = np.asarray(sub_events["true_shower_primary_id"])
    file_index = np.asarray(sub_events["file_index"])
    for index, path in enumerate(paths):
        particles = set(np.unique(primary_id[file_index == index]).tolist())
        if particles not in ({GAMMA_ID}, {PROTON_ID}):
            continue
        info = _simulation_info(path)
        if info is None:
            continue
        point_like = u.Quantity(info.viewcone_max - info.viewcone_min).value == 0
        if particles == {GAMMA_ID} and point_like:
            files["gammas"].append((index, info))
        elif particles == {PROTON_ID} and not point_like:
            files["protons"].append((index, info))
    if not files["gammas"]:
        raise SensitivityUnavailable("no point-like gamma file with simulation information")
    if not files["protons"]:
        raise SensitivityUnavailable("no diffuse proton file with simulation information")
    return {kind: ([i for i, _ in found], _combine([info for _, info in found], kind)) for kind, found in files.items()}


def _pointing(paths, sub_events, indices):
    """Pointing alt/az of the events of files ``indices``, from each file's observation blocks."""
    alt = np.full(len(sub_events), np.nan)
    az = np.full(len(sub_events), np.nan)
    file_index = np.asarray(sub_events["file_index"])
    obs_id = np.asarray(sub_events["obs_id"])
    for index in indices:
        with tables.open_file(paths[index]) as h5:
            if OBSERVATION_BLOCK_TABLE not in h5:
                raise SensitivityUnavailable(f"{paths[index]}: no pointing ({OBSERVATION_BLOCK_TABLE})")
        blocks = read_table(paths[index], OBSERVATION_BLOCK_TABLE)
        for row in blocks:
            rows = (file_index == index) & (obs_id == row["obs_id"])
            alt[rows] = u.Quantity(row["subarray_pointing_lat"], u.deg).value
            az[rows] = u.Quantity(row["subarray_pointing_lon"], u.deg).value
    return alt * u.deg, az * u.deg


def _method_events(sub_events, pointing, method, rows, target, sim_info, kind):
    """ctapipe.irf-style events of one method: valid predictions only (an
    invalid one cannot pass a cut), with derived columns and weights."""
    events = sub_events[rows]
    energy = reconstructor_events(events, method["energy"], "energy", "stereo")
    geometry = reconstructor_events(events, method["geometry"], "geometry", "stereo")
    gammaness = reconstructor_events(events, method["gammaness"], PARTICLE_TYPE_KEY, "stereo")
    valid = np.asarray(energy["valid"] & geometry["valid"] & gammaness["valid"])
    table = QTable()
    table["true_energy"] = energy["true_energy"]
    table["true_alt"] = u.Quantity(events["true_alt"], u.deg)
    table["true_az"] = u.Quantity(events["true_az"], u.deg)
    table["reco_energy"] = energy["reco_energy"]
    table["reco_alt"] = geometry["reco_alt"]
    table["reco_az"] = geometry["reco_az"]
    table["gh_score"] = np.asarray(gammaness["gammaness"], dtype=float)
    table["pointing_alt"], table["pointing_az"] = pointing[0][rows], pointing[1][rows]
    DL2EventLoader = _irf()[0]
    loader = DL2EventLoader(file="", target_spectrum=target)
    _add_telescope_columns(table, events, method, loader)
    table = loader.make_derived_columns(table[valid])
    spectrum = PowerLaw.from_simulation(sim_info, obstime=OBSERVATION_TIME)
    return loader.make_event_weights(table, spectrum, kind)


def _add_telescope_columns(table, events, method, loader):
    """The ``<reconstructor>_telescopes`` columns ctapipe 0.29+ counts the multiplicity from,
    under the names of its own preprocessor's reconstructors (``loader.epp``, absent before)."""
    preprocessor = getattr(loader, "epp", None)
    if preprocessor is None:
        return
    names = {
        preprocessor.energy_reconstructor: method["energy"],
        preprocessor.geometry_reconstructor: method["geometry"],
        preprocessor.gammaness_classifier: method["gammaness"],
    }
    for name, prefix in names.items():
        column = f"{prefix}_telescopes"
        # without the column (a reconstructor that does not record it) every event counts once
        used = np.asarray(events[column], dtype=bool) if column in events.colnames else np.ones((len(table), 1), bool)
        table[f"{name}_telescopes"] = used


def point_source_sensitivity(signal, background, reco_energy_bins, fov_offset_max=FOV_OFFSET_MAX, alpha=ALPHA):
    """Optimised cuts (ctapipe.irf `PointSourceSensitivityOptimizer` in 0.28,
    `PointSourceSensitivityGhOptimizer` from 0.29 on, i.e.
    pyirf ``optimize_gh_cut`` with a 68 % theta cut) and the sensitivity after
    them (`Sensitivity2dMaker`, one FoV-offset bin up to ``fov_offset_max``).

    ``signal`` and ``background`` are ctapipe.irf event tables (``gh_score``,
    ``reco_energy``, ``theta``, ``reco_source_fov_offset``, ``weight``, ...).
    Returns a QTable per bin of reconstructed energy.
    """
    _, GhOptimizer, Sensitivity2dMaker, Spectra = _irf()
    optimizer = GhOptimizer(alpha=alpha, max_background_fov_offset=fov_offset_max)
    optimizer.reco_energy_bins = reco_energy_bins  # the report's bins, not ctapipe's rounding of them
    # the quality query is only recorded in the result: the events are already selected
    cuts = optimizer(
        {"signal": signal, "background": background},
        quality_query=[("common benchmark selection", "True")],
        clf_prefix="gh_score",
    )
    gh_signal = evaluate_binned_cut(signal["gh_score"], signal["reco_energy"], cuts.gh_cuts, operator.ge)
    theta_cuts = cuts.spatial_selection_table
    theta_signal = evaluate_binned_cut(signal["theta"], signal["reco_energy"], theta_cuts, operator.le)
    gh_background = evaluate_binned_cut(background["gh_score"], background["reco_energy"], cuts.gh_cuts, operator.ge)
    # one offset bin: the point source sits at one offset, the background ring is one region
    maker = Sensitivity2dMaker(
        alpha=alpha, fov_offset_min=0 * u.deg, fov_offset_max=fov_offset_max, fov_offset_n_bins=1
    )
    maker.reco_energy_bins = reco_energy_bins
    hdu = maker(signal[gh_signal & theta_signal], background[gh_background], theta_cuts, Spectra.CRAB_HEGRA)
    result = QTable.read(hdu)
    out = QTable()
    out["reco_energy_low"] = reco_energy_bins[:-1]
    out["reco_energy_high"] = reco_energy_bins[1:]
    for name in _SENSITIVITY_COLUMNS:
        column = result[name][0, 0]
        # bins pyirf cannot fill come back masked
        out[name.lower()] = column.filled(np.nan) if hasattr(column, "mask") else column
    out["gh_cut"] = cuts.gh_cuts["cut"]
    out["theta_cut"] = theta_cuts["cut"].to(u.deg)
    return out


def sensitivity_all(
    paths, sub_events, reconstructors, references, reco_energy_bins, fov_offset_max=FOV_OFFSET_MAX, alpha=ALPHA
):
    """``({method: {"reconstructors": {...}, "bins": [...]}}, {method: QTable})``
    for every method of `method_triples`, on the subarray events of the common selection.

    Raises `SensitivityUnavailable` when the inputs do not allow a sensitivity.
    """
    Spectra = _irf()[3]
    methods = method_triples(reconstructors, references)
    if not methods:
        raise SensitivityUnavailable("no subarray gammaness + energy + geometry of one method")
    inputs = simulation_inputs(paths, sub_events)
    pointing = _pointing(paths, sub_events, [i for indices, _ in inputs.values() for i in indices])
    file_index = np.asarray(sub_events["file_index"])
    metrics, tables_out = {}, {}
    for name, method in methods.items():
        parts = {}
        for kind, target in (("gammas", Spectra.CRAB_HEGRA), ("protons", Spectra.IRFDOC_PROTON_SPECTRUM)):
            indices, sim_info = inputs[kind]
            rows = np.isin(file_index, indices)
            parts[kind] = _method_events(sub_events, pointing, method, rows, target, sim_info, kind)
        try:
            table = point_source_sensitivity(parts["gammas"], parts["protons"], reco_energy_bins, fov_offset_max, alpha)
        except (ValueError, IndexError) as err:
            # ctapipe's optimiser refuses a significance curve with no or interrupted valid bins
            log.info("no sensitivity for %s: %s", name, err)
            continue
        tables_out[name] = table
        metrics[name] = {"reconstructors": method, "bins": _rows(table)}
        measured = np.isfinite(table["relative_sensitivity"])
        empty = int(np.count_nonzero(measured & (np.asarray(table["n_background"]) == 0)))
        if empty:
            log.warning(
                "sensitivity of %s: no background event left after the cuts in %d of %d bins; there it is "
                "limited by the signal count only (more simulated protons needed)", name, empty, int(measured.sum()))
    if not metrics:
        raise SensitivityUnavailable("too few events after cuts for every method")
    return metrics, tables_out


def sensitivity_entry(per_method) -> dict:
    """The ``sensitivity`` entry of ``metrics.json``: the settings and the per-method
    results of `sensitivity_all`."""
    return {
        "observation_time_h": OBSERVATION_TIME.to_value(u.h),
        "alpha": ALPHA,
        "background_fov_offset_max_deg": FOV_OFFSET_MAX.to_value(u.deg),
        "source_spectrum": "CRAB_HEGRA",
        "background_spectrum": "IRFDOC_PROTON_SPECTRUM",
        "methods": per_method,
    }


def _rows(table):
    rows = []
    for row in table:
        entry = {
            "reco_energy_min_tev": float(row["reco_energy_low"].to_value(u.TeV)),
            "reco_energy_max_tev": float(row["reco_energy_high"].to_value(u.TeV)),
            "n_signal": float(row["n_signal"]),
            "n_signal_weighted": float(row["n_signal_weighted"]),
            "n_background": float(row["n_background"]),
            "n_background_weighted": float(row["n_background_weighted"]),
            "significance": float(row["significance"]),
            "relative_sensitivity": float(row["relative_sensitivity"]),
            "flux_sensitivity_per_tev_s_cm2": float(row["flux_sensitivity"].to_value(1 / (u.TeV * u.s * u.cm**2))),
            "energy_flux_sensitivity_erg_per_s_cm2": float(
                row["energy_flux_sensitivity"].to_value(u.erg / (u.s * u.cm**2))
            ),
            "gammaness_cut": float(row["gh_cut"]),
            "theta_cut_deg": float(row["theta_cut"].to_value(u.deg)),
        }
        rows.append(entry)
    return rows


def format_sensitivity(per_method, reference="reference"):
    """Printed table: E² × flux sensitivity [erg cm⁻² s⁻¹] per bin and method,
    each followed by its ratio to ``reference`` (below 1 is better)."""
    order = sorted(per_method, key=lambda m: (m != reference, m))
    first = per_method[order[0]]
    out = Table()
    out["E_min [TeV]"] = [f"{v:.3g}" for v in first["reco_energy_low"].to_value(u.TeV)]
    out["E_max [TeV]"] = [f"{v:.3g}" for v in first["reco_energy_high"].to_value(u.TeV)]
    unit = u.erg / (u.cm**2 * u.s)
    for method in order:
        out[method] = per_method[method]["energy_flux_sensitivity"].to_value(unit)
        out[method].format = ".3g"
        out[f"{method} n_bkg"] = per_method[method]["n_background"]
        out[f"{method} n_bkg"].format = ".0f"
        if reference in per_method and method != reference:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"{method}/ref"] = out[method] / out[reference]
            out[f"{method}/ref"].format = ".2f"
    keep = np.any([np.isfinite(np.asarray(out[m], dtype=float)) for m in order], axis=0)
    title = (
        f"[sensitivity] point source, {OBSERVATION_TIME:g}, E² × flux sensitivity [erg cm⁻² s⁻¹]"
        + (f" (reference: {reference})" if reference in per_method else "")
    )
    return title + "\n" + "\n".join(out[keep].pformat(max_lines=-1, max_width=-1))
