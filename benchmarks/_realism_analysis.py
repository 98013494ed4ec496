"""The standard mono Hillas+RF analysis on DL1 parameter tables (sklearn), as small pure functions."""

import astropy.units as u
import numpy as np
from astropy.table import QTable
from pyirf.benchmarks import angular_resolution, energy_bias_resolution
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, KFold

__all__ = [
    "PROD5_FEATURES", "LST_FEATURES", "cross_validated_auc", "quantiles", "mono_performance", "auc_per_intensity",
]

#: features present in both the prod5 tables and ours (prod5 has no timing)
PROD5_FEATURES = [
    "hillas_intensity", "hillas_width", "hillas_length", "hillas_skewness", "hillas_kurtosis", "hillas_r",
    "concentration_cog", "concentration_core", "concentration_pixel", "leakage_intensity_width_2",
    "morphology_n_pixels", "morphology_n_islands", "intensity_max", "intensity_std",
]
#: lstchain-like mono features: Hillas, timing, leakage, concentration
LST_FEATURES = PROD5_FEATURES + ["timing_slope", "timing_deviation", "hillas_fov_lon", "hillas_fov_lat"]


def _matrix(table, features):
    x = np.column_stack([np.asarray(table[f], dtype=float) for f in features])
    x[~np.isfinite(x)] = -999.0
    x[:, 0] = np.log10(np.maximum(x[:, 0], 1.0))
    return x


def quantiles(values, q=(16, 50, 84)):
    return np.percentile(np.asarray(values, dtype=float), q)


def _forest_classifier(seed):
    return RandomForestClassifier(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)


def cross_validated_gammaness(gammas, protons, features, seed=0, folds=5):
    """Out-of-fold gammaness of every event (gammas first, then protons)."""
    x = np.vstack([_matrix(gammas, features), _matrix(protons, features)])
    y = np.concatenate([np.ones(len(gammas)), np.zeros(len(protons))])
    score = np.empty(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        score[test] = _forest_classifier(seed).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return y, score


def cross_validated_auc(gammas, protons, features, seed=0):
    y, score = cross_validated_gammaness(gammas, protons, features, seed)
    return roc_auc_score(y, score)


def auc_per_intensity(gammas, protons, features, bins, seed=0):
    y, score = cross_validated_gammaness(gammas, protons, features, seed)
    intensity = np.concatenate([np.asarray(gammas["hillas_intensity"]), np.asarray(protons["hillas_intensity"])])
    out = {}
    for lo, hi in bins:
        m = (intensity >= lo) & (intensity < hi)
        n_sig, n_bkg = int(y[m].sum()), int((1 - y[m]).sum())
        out[(lo, hi)] = (roc_auc_score(y[m], score[m]) if min(n_sig, n_bkg) >= 10 else np.nan, n_sig, n_bkg)
    return out


def _disp_direction(table, x, seed, folds=2):
    """Out-of-fold source position from |disp| (regression) and its sign (classification)."""
    cog_lon = np.asarray(table["hillas_fov_lon"], dtype=float)
    cog_lat = np.asarray(table["hillas_fov_lat"], dtype=float)
    psi = np.deg2rad(np.asarray(table["hillas_psi"], dtype=float))
    true_lon, true_lat = np.asarray(table["true_fov_lon"]), np.asarray(table["true_fov_lat"])
    # signed distance of the true source from the centroid along the major axis
    disp = (true_lon - cog_lon) * np.cos(psi) + (true_lat - cog_lat) * np.sin(psi)
    norm, sign = np.empty(len(x)), np.empty(len(x))
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        reg = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)
        norm[test] = reg.fit(x[train], np.abs(disp[train])).predict(x[test])
        sign[test] = np.where(_forest_classifier(seed).fit(x[train], disp[train] > 0).predict(x[test]), 1.0, -1.0)
    reco_lon = cog_lon + sign * norm * np.cos(psi)
    reco_lat = cog_lat + sign * norm * np.sin(psi)
    return np.hypot(reco_lon - true_lon, reco_lat - true_lat)


def _energy(table, x, seed, folds=2):
    log_e = np.log10(np.asarray(table["true_energy"], dtype=float))
    out = np.empty(len(x))
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        reg = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)
        out[test] = reg.fit(x[train], log_e[train]).predict(x[test])
    return 10**out


def mono_performance(gammas, protons, energy_bins, features=LST_FEATURES, gh_efficiency=0.9, seed=0):
    """68% angular and energy resolution per true-energy bin after a gamma-efficiency cut."""
    x = _matrix(gammas, features)
    theta = _disp_direction(gammas, x, seed)
    reco_energy = _energy(gammas, x, seed)
    y, score = cross_validated_gammaness(gammas, protons, features, seed)
    gammaness = score[: len(gammas)]
    true_energy = np.asarray(gammas["true_energy"], dtype=float)
    keep = np.zeros(len(gammas), dtype=bool)
    bin_index = np.digitize(true_energy, energy_bins) - 1
    for i in range(len(energy_bins) - 1):
        m = bin_index == i
        if m.sum():
            keep[m] = gammaness[m] >= np.quantile(gammaness[m], 1 - gh_efficiency)
    events = QTable(
        dict(
            true_energy=true_energy[keep] * u.TeV,
            reco_energy=reco_energy[keep] * u.TeV,
            theta=theta[keep] * u.deg,
        )
    )
    bins = energy_bins * u.TeV
    ang = angular_resolution(events, bins)
    eres = energy_bias_resolution(events, bins)
    counts = np.histogram(true_energy[keep], energy_bins)[0]
    return ang["angular_resolution"].to_value(u.deg) if "angular_resolution" in ang.colnames else ang[
        "angular_resolution_68"
    ].to_value(u.deg), np.asarray(eres["resolution"]), counts
