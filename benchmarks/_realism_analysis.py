"""The standard mono Hillas+RF analysis on DL1 parameter tables (sklearn), as small pure functions."""

import astropy.units as u
import numpy as np
from astropy.table import QTable
from pyirf.benchmarks import angular_resolution, energy_bias_resolution
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, KFold

__all__ = ["PROD5_FEATURES", "LST_FEATURES", "cross_validated_auc", "quantiles", "mono_performance"]

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


def _signed_disp(table):
    """Signed distance of the true source from the centroid along the major axis, deg."""
    psi = np.deg2rad(np.asarray(table["hillas_psi"], dtype=float))
    d_lon = np.asarray(table["true_fov_lon"]) - np.asarray(table["hillas_fov_lon"], dtype=float)
    d_lat = np.asarray(table["true_fov_lat"]) - np.asarray(table["hillas_fov_lat"], dtype=float)
    return d_lon * np.cos(psi) + d_lat * np.sin(psi)


def _theta(train, test, x_train, x_test, seed):
    """Disp method: |disp| by regression, its sign by classification; distance to the true source."""
    disp = _signed_disp(train)
    reg = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)
    norm = reg.fit(x_train, np.abs(disp)).predict(x_test)
    sign = np.where(_forest_classifier(seed).fit(x_train, disp > 0).predict(x_test), 1.0, -1.0)
    psi = np.deg2rad(np.asarray(test["hillas_psi"], dtype=float))
    reco_lon = np.asarray(test["hillas_fov_lon"], dtype=float) + sign * norm * np.cos(psi)
    reco_lat = np.asarray(test["hillas_fov_lat"], dtype=float) + sign * norm * np.sin(psi)
    return np.hypot(reco_lon - np.asarray(test["true_fov_lon"]), reco_lat - np.asarray(test["true_fov_lat"]))


def _energy(train, x_train, x_test, seed):
    reg = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)
    log_e = np.log10(np.asarray(train["true_energy"], dtype=float))
    return 10 ** reg.fit(x_train, log_e).predict(x_test)


def mono_performance(
    diffuse, point, protons, energy_bins, features=LST_FEATURES, gh_efficiency=0.9, intensity_bins=(), seed=0
):
    """LST-1-style mono analysis: models trained on diffuse gammas (and protons, 2-fold), applied
    to point-like gammas. Returns the 68% angular and the energy resolution per true-energy bin
    after a per-bin gammaness cut keeping ``gh_efficiency`` of the gammas, the gamma counts,
    and the point-gamma / proton AUC per intensity bin."""
    x_diffuse, x_point, x_protons = (_matrix(t, features) for t in (diffuse, point, protons))
    theta = _theta(diffuse, point, x_diffuse, x_point, seed)
    reco_energy = _energy(diffuse, x_diffuse, x_point, seed)

    point_score = np.zeros(len(point))
    proton_score = np.empty(len(protons))
    folds = list(KFold(2, shuffle=True, random_state=seed).split(x_protons))
    for train, test in folds:
        x = np.vstack([x_diffuse, x_protons[train]])
        y = np.concatenate([np.ones(len(x_diffuse)), np.zeros(len(train))])
        model = _forest_classifier(seed).fit(x, y)
        proton_score[test] = model.predict_proba(x_protons[test])[:, 1]
        point_score += model.predict_proba(x_point)[:, 1] / len(folds)

    true_energy = np.asarray(point["true_energy"], dtype=float)
    keep = np.zeros(len(point), dtype=bool)
    bin_index = np.digitize(true_energy, energy_bins) - 1
    for i in range(len(energy_bins) - 1):
        m = bin_index == i
        if m.sum():
            keep[m] = point_score[m] >= np.quantile(point_score[m], 1 - gh_efficiency)
    events = QTable(
        dict(true_energy=true_energy[keep] * u.TeV, reco_energy=reco_energy[keep] * u.TeV, theta=theta[keep] * u.deg)
    )
    bins = energy_bins * u.TeV
    ang = angular_resolution(events, bins)
    ang_col = "angular_resolution" if "angular_resolution" in ang.colnames else "angular_resolution_68"
    eres = energy_bias_resolution(events, bins)
    counts = np.histogram(true_energy[keep], energy_bins)[0]

    aucs = {}
    i_point = np.asarray(point["hillas_intensity"], dtype=float)
    i_protons = np.asarray(protons["hillas_intensity"], dtype=float)
    for lo, hi in intensity_bins:
        mg, mp = (i_point >= lo) & (i_point < hi), (i_protons >= lo) & (i_protons < hi)
        y = np.concatenate([np.ones(mg.sum()), np.zeros(mp.sum())])
        score = np.concatenate([point_score[mg], proton_score[mp]])
        aucs[(lo, hi)] = (roc_auc_score(y, score) if min(mg.sum(), mp.sum()) >= 10 else np.nan, int(mg.sum()), int(mp.sum()))
    return ang[ang_col].to_value(u.deg), np.asarray(eres["resolution"]), counts, aucs
