"""The standard mono Hillas+RF analysis on DL1 parameter tables (sklearn), as small pure functions."""

import astropy.units as u
import numpy as np
from astropy.table import QTable
from pyirf.benchmarks import angular_resolution, energy_bias_resolution
from pyirf.benchmarks.energy_bias_resolution import energy_resolution_absolute_68
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold

__all__ = ["PROD5_FEATURES", "LSTCHAIN_FEATURES", "cross_validated_auc", "quantiles", "mono_performance"]

#: features present in both the prod5 tables and ours (prod5 has no timing)
PROD5_FEATURES = [
    "hillas_intensity", "hillas_width", "hillas_length", "hillas_skewness", "hillas_kurtosis", "hillas_r",
    "concentration_cog", "concentration_core", "concentration_pixel", "leakage_intensity_width_2",
    "morphology_n_pixels", "morphology_n_islands", "intensity_max", "intensity_std",
]
#: the LST-1 Crab paper's source-independent models (lstchain; its repository's
#: 3_pipeline/3.3_rf/source_indep_models_features_importances.csv)
LSTCHAIN_FEATURES = {
    "energy": ["log_intensity", "width", "length", "x", "y", "wl", "skewness", "kurtosis", "time_gradient",
               "leakage_intensity_width_2", "alt_tel", "az_tel"],
    "disp": ["log_intensity", "width", "length", "wl", "skewness", "kurtosis", "time_gradient",
             "leakage_intensity_width_2", "alt_tel", "az_tel"],
    "classification": ["log_intensity", "width", "length", "x", "y", "wl", "signed_skewness", "kurtosis",
                       "signed_time_gradient", "leakage_intensity_width_2", "alt_tel", "az_tel", "log_reco_energy",
                       "reco_disp_norm", "reco_disp_sign"],
}
#: lstchain's names for ctapipe's DL1 columns
_LSTCHAIN_COLUMNS = {
    "width": "hillas_width", "length": "hillas_length", "x": "hillas_fov_lon", "y": "hillas_fov_lat",
    "skewness": "hillas_skewness", "kurtosis": "hillas_kurtosis", "time_gradient": "timing_slope",
    "leakage_intensity_width_2": "leakage_intensity_width_2", "alt_tel": "telescope_pointing_altitude",
    "az_tel": "telescope_pointing_azimuth",
}


def _lstchain_matrix(table, features, reco=None):
    """Feature matrix by lstchain names; ``reco``: the reconstructed energy, |disp| and sign."""
    def column(name):
        if name == "log_intensity":
            return np.log10(np.maximum(np.asarray(table["hillas_intensity"], dtype=float), 1.0))
        if name == "wl":
            return column("width") / column("length")
        if name in ("signed_skewness", "signed_time_gradient"):
            return column(name.removeprefix("signed_")) * reco["reco_disp_sign"]
        if name in _LSTCHAIN_COLUMNS:
            return np.asarray(table[_LSTCHAIN_COLUMNS[name]], dtype=float)
        if name == "log_reco_energy":
            return np.log10(reco["reco_energy"])
        return np.asarray(reco[name], dtype=float)

    x = np.column_stack([column(f) for f in features])
    x[~np.isfinite(x)] = -999.0
    return x


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


def _regressor(seed):
    return RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)


def _reconstruct(train, tables, seed):
    """Energy (TeV), |disp| and disp sign of each table's events, from forests trained on ``train``."""
    x_train = _lstchain_matrix(train, LSTCHAIN_FEATURES["energy"])
    energy = _regressor(seed).fit(x_train, np.log10(np.asarray(train["true_energy"], dtype=float)))
    x_train = _lstchain_matrix(train, LSTCHAIN_FEATURES["disp"])
    disp = _signed_disp(train)
    norm = _regressor(seed).fit(x_train, np.abs(disp))
    sign = _forest_classifier(seed).fit(x_train, disp > 0)
    out = []
    for table in tables:
        x_e, x_d = (_lstchain_matrix(table, LSTCHAIN_FEATURES[k]) for k in ("energy", "disp"))
        out.append(dict(
            reco_energy=10 ** energy.predict(x_e), reco_disp_norm=norm.predict(x_d),
            reco_disp_sign=np.where(sign.predict(x_d), 1.0, -1.0),
        ))
    return out


def _out_of_fold(train, seed, folds=2):
    """`_reconstruct` of ``train`` itself, each event by the models of the other fold (as
    lstchain trains the classifier on reconstructed quantities)."""
    reco = {k: np.empty(len(train)) for k in ("reco_energy", "reco_disp_norm", "reco_disp_sign")}
    for fit, predict in KFold(folds, shuffle=True, random_state=seed).split(np.arange(len(train))):
        (part,) = _reconstruct(train[fit], [train[predict]], seed)
        for key, values in part.items():
            reco[key][predict] = values
    return reco


def _theta(table, reco):
    """Distance of the disp-reconstructed direction from the true source, and whether the
    head/tail (the disp sign) is right."""
    psi = np.deg2rad(np.asarray(table["hillas_psi"], dtype=float))
    step = reco["reco_disp_sign"] * reco["reco_disp_norm"]
    reco_lon = np.asarray(table["hillas_fov_lon"], dtype=float) + step * np.cos(psi)
    reco_lat = np.asarray(table["hillas_fov_lat"], dtype=float) + step * np.sin(psi)
    theta = np.hypot(reco_lon - np.asarray(table["true_fov_lon"]), reco_lat - np.asarray(table["true_fov_lat"]))
    return theta, reco["reco_disp_sign"] == np.sign(_signed_disp(table))


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
    diffuse, point, protons, energy_bins, gh_efficiency=0.9, intensity_bins=(), theta_containment=0.68,
    min_events=100, right_sign_only=True, seed=0,
):
    """The LST-1 Crab paper's mono analysis (source-independent; its repository's
    3_pipeline/3.4_irfs/dl2_to_irfs.py), on ctapipe DL1 tables:

    - forests for energy, |disp|, disp sign (trained on diffuse gammas) and gammaness (diffuse
      gammas and protons, 2-fold), on lstchain's features (`LSTCHAIN_FEATURES`); the
      classifier sees the reconstructed energy and disp, out of fold for its training events;
    - a gammaness cut keeping ``gh_efficiency`` of the point-like gammas per true-energy bin;
    - angular resolution: 68% containment of the selected gammas whose head/tail (disp
      sign) is right, as the paper's IRFs (``right_sign_only=False``: of all selected gammas);
    - energy resolution: 68% quantile of |E_reco/E_true - 1| after a theta cut of
      ``theta_containment`` per true-energy bin (computed on the right-tail events);
    - bins with fewer than ``min_events`` gammas give NaN.

    Returns the angular and energy resolution per true-energy bin, the gamma counts after the
    gammaness cut, the point-gamma / proton AUC per intensity bin, and the share of the
    selected gammas whose head/tail is right."""
    point_reco, proton_reco = _reconstruct(diffuse, [point, protons], seed)
    diffuse_reco = _out_of_fold(diffuse, seed)
    theta, right_sign = _theta(point, point_reco)
    reco_energy = point_reco["reco_energy"]

    features = LSTCHAIN_FEATURES["classification"]
    x_diffuse = _lstchain_matrix(diffuse, features, diffuse_reco)
    x_point = _lstchain_matrix(point, features, point_reco)
    x_protons = _lstchain_matrix(protons, features, proton_reco)
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
    # the paper's IRFs cut per true-energy bin (its THETA_CUTS equal the 68% containment per bin)
    keep = point_score >= _binned_quantile_cut(point_score, true_energy, cut_bins, 1 - gh_efficiency)
    used = keep & right_sign if right_sign_only else keep
    kept_theta = np.where(keep & right_sign, theta, np.nan)
    theta_cut = _binned_quantile_cut(kept_theta, true_energy, cut_bins, theta_containment)
    bins = energy_bins * u.TeV

    def table(mask):
        return QTable(
            dict(
                true_energy=true_energy[mask] * u.TeV, reco_energy=reco_energy[mask] * u.TeV, theta=theta[mask] * u.deg
            )
        )

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
        aucs[(lo, hi)] = (
            roc_auc_score(y, score) if min(mg.sum(), mp.sum()) >= 10 else np.nan,
            int(mg.sum()),
            int(mp.sum()),
        )
    return ang_res, e_res, counts, aucs, float(np.mean(right_sign[keep]))
