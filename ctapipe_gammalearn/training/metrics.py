"""Validation metrics of network outputs against labels, overall and per energy bin.

numpy in, plain floats out (JSON-ready). Resolutions are 68 % containment:
of |log10 E_reco - log10 E_true| turned into a relative energy error, of the
angular distance in the telescope frame, and of the impact-point distance.
"""

import numpy as np
from sklearn.metrics import roc_auc_score

from ..modelcard import GAMMA_CLASS_INDEX

__all__ = ["ENERGY_BINS", "summary_metrics", "binned_metrics"]

#: log10(E / TeV) bin edges, 5 per decade from 10 GeV to 100 TeV
ENERGY_BINS = np.linspace(-2, 2, 21)


def _q68(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, 68.27)) if len(values) else float("nan")


def _gammaness(class_logits):
    logits = np.asarray(class_logits, dtype=np.float64)
    logits = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    return prob[:, GAMMA_CLASS_INDEX] / prob.sum(axis=1)


def _auc(is_gamma, gammaness):
    if is_gamma.all() or not is_gamma.any():
        return float("nan")
    return float(roc_auc_score(is_gamma, gammaness))


def _per_event(outputs, labels):
    is_gamma = np.asarray(labels["particle"]) == GAMMA_CLASS_INDEX
    d_log_e = np.asarray(outputs["log10_energy"]) - np.asarray(labels["log10_energy"])
    return {
        "is_gamma": is_gamma,
        "gammaness": _gammaness(outputs["class_logits"]),
        # |E_reco / E_true - 1| from the log10 difference
        "energy_error": np.abs(10.0**d_log_e - 1.0),
        "direction_error": np.hypot(*(np.asarray(outputs["fov_offset"]) - np.asarray(labels["fov_offset"])).T),
        "impact_error": np.hypot(*(np.asarray(outputs["impact"]) - np.asarray(labels["impact"])).T),
        "predicted_class": np.argmax(np.asarray(outputs["class_logits"]), axis=1),
    }


def summary_metrics(outputs, labels):
    """One number per task (regressions on gammas): AUC, accuracy, resolutions."""
    ev = _per_event(outputs, labels)
    g = ev["is_gamma"]
    return {
        "roc_auc": _auc(g, ev["gammaness"]),
        "accuracy": float(np.mean(ev["predicted_class"] == np.asarray(labels["particle"]))),
        "energy_resolution": _q68(ev["energy_error"][g]),
        "angular_resolution_deg": _q68(ev["direction_error"][g]),
        "impact_resolution_m": _q68(ev["impact_error"][g]),
        "n_gamma": int(g.sum()),
        "n_proton": int((~g).sum()),
    }


def binned_metrics(outputs, labels, bins=ENERGY_BINS):
    """Per true-energy bin: resolutions on gammas, ROC AUC on all events; empty bins dropped."""
    ev = _per_event(outputs, labels)
    log_e = np.asarray(labels["log10_energy"])
    index = np.digitize(log_e, bins) - 1
    rows = []
    for i in range(len(bins) - 1):
        sel = index == i
        if not sel.any():
            continue
        g = sel & ev["is_gamma"]
        rows.append(
            {
                "log10_energy_low": float(bins[i]),
                "log10_energy_high": float(bins[i + 1]),
                "n_gamma": int(g.sum()),
                "n_proton": int((sel & ~ev["is_gamma"]).sum()),
                "energy_resolution": _q68(ev["energy_error"][g]),
                "angular_resolution_deg": _q68(ev["direction_error"][g]),
                "roc_auc": _auc(ev["is_gamma"][sel], ev["gammaness"][sel]),
            }
        )
    return rows
