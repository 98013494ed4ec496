"""Per-energy-bin benchmarks over pyirf-style tables (see `events.reconstructor_events`).

Binning is in true energy for every metric, so that all reconstructors (and
the background, for the ROC) share the same bins. Statistics come from pyirf
and scikit-learn. Bins with fewer than ``min_events`` events report NaN.
"""

import astropy.units as u
import numpy as np
from astropy.table import QTable
from pyirf.benchmarks import angular_resolution, energy_bias_resolution
from pyirf.binning import calculate_bin_indices, create_bins_per_decade
from pyirf.cuts import calculate_percentile_cut, evaluate_binned_cut
from sklearn.metrics import roc_auc_score, roc_curve

from .events import GAMMA_ID

__all__ = [
    "energy_bins",
    "count_in_bins",
    "energy_benchmark",
    "angular_benchmark",
    "classification_benchmark",
    "roc",
]

#: gammaness given to invalid predictions: below every cut, so the event is lost
INVALID_GAMMANESS = -1.0


@u.quantity_input(energy_min=u.TeV, energy_max=u.TeV)
def energy_bins(energy_min=0.02 * u.TeV, energy_max=200 * u.TeV, bins_per_decade=5):
    """Log-spaced true-energy bin edges (pyirf)."""
    return create_bins_per_decade(energy_min, energy_max, bins_per_decade)


def _bin_table(bins):
    table = QTable()
    table["true_energy_low"] = bins[:-1]
    table["true_energy_high"] = bins[1:]
    table["true_energy_center"] = np.sqrt(bins[:-1] * bins[1:])
    return table


def count_in_bins(true_energy, bins, mask=None):
    """Number of events per true-energy bin (events outside the bins are ignored)."""
    index, inside = calculate_bin_indices(true_energy, bins)
    if mask is not None:
        inside = inside & mask
    return np.bincount(index[inside], minlength=len(bins) - 1)[: len(bins) - 1]


def _valid_fraction(n_valid, n_all):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_all > 0, n_valid / np.maximum(n_all, 1), np.nan)


def _per_gamma_bin(events, bins, min_events, pyirf_benchmark):
    """A pyirf benchmark on the valid gamma predictions, with the per-bin counts
    of all gammas: (table with n_events and valid_fraction, pyirf result,
    bins with too few valid events)."""
    gammas = events[events["particle_id"] == GAMMA_ID]
    result = pyirf_benchmark(gammas[gammas["valid"]], bins, energy_type="true")
    n_all = count_in_bins(gammas["true_energy"], bins)
    table = _bin_table(bins)
    table["n_events"] = n_all
    table["valid_fraction"] = _valid_fraction(result["n_events"], n_all)
    return table, result, np.asarray(result["n_events"]) < min_events


def energy_benchmark(events, bins, min_events=10):
    """Energy bias (median of E_reco/E_true - 1) and resolution (half the
    central 68% interval of it) for gammas, with pyirf."""
    table, result, too_few = _per_gamma_bin(events, bins, min_events, energy_bias_resolution)
    table["energy_bias"] = np.where(too_few, np.nan, result["bias"])
    table["energy_resolution"] = np.where(too_few, np.nan, result["resolution"])
    return table


def angular_benchmark(events, bins, min_events=10):
    """68% containment radius of the angular distance to the true direction, for gammas, with pyirf."""
    table, result, too_few = _per_gamma_bin(events, bins, min_events, angular_resolution)
    res = result["angular_resolution_68"].to_value(u.deg)
    table["angular_resolution_deg"] = np.where(too_few, np.nan, res)
    return table


def _scores(events):
    """Gammaness with invalid predictions rejected at every cut."""
    gammaness = np.asarray(events["gammaness"], dtype=float)
    return np.where(events["valid"], gammaness, INVALID_GAMMANESS)


def roc(events, background_ids=(101,)):
    """ROC curve of gamma against ``background_ids``: ``(fpr, tpr, auc)``; NaN AUC with one class only."""
    is_gamma = events["particle_id"] == GAMMA_ID
    used = is_gamma | np.isin(events["particle_id"], background_ids)
    labels, scores = is_gamma[used], _scores(events)[used]
    if labels.all() or not labels.any():
        return np.array([]), np.array([]), np.nan
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr, float(roc_auc_score(labels, scores))


def classification_benchmark(events, bins, gamma_efficiency=0.7, background_ids=(101,), min_events=10):
    """Per true-energy bin: AUC, and the gammaness cut keeping ``gamma_efficiency``
    of the gammas with the fraction of background it lets through.

    Both classes are binned in their own true energy.
    """
    is_gamma = np.asarray(events["particle_id"] == GAMMA_ID)
    is_bkg = np.isin(events["particle_id"], background_ids)
    scores = _scores(events)
    table = _bin_table(bins)
    n_gamma = count_in_bins(events["true_energy"], bins, is_gamma)
    n_bkg = count_in_bins(events["true_energy"], bins, is_bkg)
    n_valid = count_in_bins(events["true_energy"], bins, (is_gamma | is_bkg) & np.asarray(events["valid"]))
    table["n_events"] = n_gamma + n_bkg
    table["n_gamma"] = n_gamma
    table["n_background"] = n_bkg
    table["valid_fraction"] = _valid_fraction(n_valid, n_gamma + n_bkg)

    index, inside = calculate_bin_indices(events["true_energy"], bins)
    auc = np.full(len(bins) - 1, np.nan)
    for i in range(len(bins) - 1):
        in_bin = inside & (index == i) & (is_gamma | is_bkg)
        if n_gamma[i] >= min_events and n_bkg[i] >= min_events:
            auc[i] = roc_auc_score(is_gamma[in_bin], scores[in_bin])
    table["auc"] = auc

    # the cut keeping gamma_efficiency of the gammas is their (1 - eff) quantile
    cuts = calculate_percentile_cut(
        scores[is_gamma],
        events["true_energy"][is_gamma],
        bins,
        fill_value=np.nan,
        percentile=100 * (1 - gamma_efficiency),
        min_events=min_events,
    )
    table["gammaness_cut"] = np.asarray(cuts["cut"], dtype=float)
    passed = evaluate_binned_cut(scores[is_bkg], events["true_energy"][is_bkg], cuts, np.greater_equal)
    n_bkg_passed = count_in_bins(events["true_energy"][is_bkg], bins, passed)
    with np.errstate(invalid="ignore", divide="ignore"):
        measured = (n_bkg >= min_events) & np.isfinite(table["gammaness_cut"])
        bkg_eff = np.where(measured, n_bkg_passed / np.maximum(n_bkg, 1), np.nan)
    table["background_efficiency"] = bkg_eff
    return table
