"""The standard mono Hillas+RF analysis on DL1 parameter tables (sklearn), as small pure functions."""

import astropy.units as u
import numpy as np
from astropy.table import QTable
from pyirf.benchmarks import angular_resolution, energy_bias_resolution
from pyirf.benchmarks.energy_bias_resolution import energy_resolution_absolute_68
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
    """Disp method: |disp| by regression, its sign by classification.

    Returns the distance to the true source and whether the sign (head/tail) is right."""
    disp = _signed_disp(train)
    reg = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)
    norm = reg.fit(x_train, np.abs(disp)).predict(x_test)
    sign = np.where(_forest_classifier(seed).fit(x_train, disp > 0).predict(x_test), 1.0, -1.0)
    psi = np.deg2rad(np.asarray(test["hillas_psi"], dtype=float))
    reco_lon = np.asarray(test["hillas_fov_lon"], dtype=float) + sign * norm * np.cos(psi)
    reco_lat = np.asarray(test["hillas_fov_lat"], dtype=float) + sign * norm * np.sin(psi)
    theta = np.hypot(reco_lon - np.asarray(test["true_fov_lon"]), reco_lat - np.asarray(test["true_fov_lat"]))
    return theta, sign == np.sign(_signed_disp(test))


def _energy(train, x_train, x_test, seed):
    reg = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)
    log_e = np.log10(np.asarray(train["true_energy"], dtype=float))
    return 10 ** reg.fit(x_train, log_e).predict(x_test)


def _binned_quantile_cut(values, energy, bins, quantile):
    """Per-bin ``quantile`` of the finite ``values`` (a bin without any gets the overall one)."""
    index = np.clip(np.digitize(energy, bins) - 1, 0, len(bins) - 2)
    finite = np.isfinite(values)
    overall = np.quantile(values[finite], quantile)
    cuts = np.array([
        np.quantile(values[finite & (index == i)], quantile) if np.any(finite & (index == i)) else overall
        for i in range(len(bins) - 1)
    ])
    return cuts[index]


def mono_performance(
    diffuse, point, protons, energy_bins, features=LST_FEATURES, gh_efficiency=0.9, intensity_bins=(),
    theta_containment=0.68, min_events=100, right_sign_only=False, seed=0,
):
    """LST-1-style mono analysis: models trained on diffuse gammas (and protons, 2-fold), applied
    to point-like gammas, with the LST-1 performance paper's IRF procedure:

    - a gammaness cut keeping ``gh_efficiency`` of the gammas per reconstructed-energy bin;
    - angular resolution: 68% containment of the selected gammas (with ``right_sign_only``,
      of those whose head/tail, the disp sign, is right);
    - energy resolution: 68% quantile of |E_reco/E_true - 1| after a theta cut of
      ``theta_containment`` per reconstructed-energy bin;
    - bins with fewer than ``min_events`` gammas give NaN.

    Returns the angular and energy resolution per true-energy bin, the gamma counts after the
    gammaness cut, the point-gamma / proton AUC per intensity bin, and the share of the
    selected gammas whose head/tail is right."""
    x_diffuse, x_point, x_protons = (_matrix(t, features) for t in (diffuse, point, protons))
    theta, right_sign = _theta(diffuse, point, x_diffuse, x_point, seed)
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
    cut_bins = np.concatenate([[0.0], energy_bins, [np.inf]])
    keep = point_score >= _binned_quantile_cut(point_score, reco_energy, cut_bins, 1 - gh_efficiency)
    used = keep & right_sign if right_sign_only else keep
    theta_cut = _binned_quantile_cut(np.where(used, theta, np.nan), reco_energy, cut_bins, theta_containment)
    bins = energy_bins * u.TeV

    def table(mask):
        return QTable(dict(
            true_energy=true_energy[mask] * u.TeV, reco_energy=reco_energy[mask] * u.TeV, theta=theta[mask] * u.deg
        ))

    ang = angular_resolution(table(used), bins)
    ang_col = "angular_resolution" if "angular_resolution" in ang.colnames else "angular_resolution_68"
    eres = energy_bias_resolution(
        table(keep & (theta <= theta_cut)), bins, resolution_function=energy_resolution_absolute_68
    )
    counts = np.histogram(true_energy[keep], energy_bins)[0]
    too_few = counts < min_events
    ang_res = np.where(too_few, np.nan, ang[ang_col].to_value(u.deg))
    e_res = np.where(too_few, np.nan, np.asarray(eres["resolution"]))

    aucs = {}
    i_point = np.asarray(point["hillas_intensity"], dtype=float)
    i_protons = np.asarray(protons["hillas_intensity"], dtype=float)
    for lo, hi in intensity_bins:
        mg, mp = (i_point >= lo) & (i_point < hi), (i_protons >= lo) & (i_protons < hi)
        y = np.concatenate([np.ones(mg.sum()), np.zeros(mp.sum())])
        score = np.concatenate([point_score[mg], proton_score[mp]])
        aucs[(lo, hi)] = (roc_auc_score(y, score) if min(mg.sum(), mp.sum()) >= 10 else np.nan, int(mg.sum()), int(mp.sum()))
    return ang_res, e_res, counts, aucs, float(np.mean(right_sign[keep]))
