"""How far a target domain (observed runs, shifted simulations) lies from the source.

Torch-free: the network's backbone features come in as arrays (computed by
`ctapipe_gammalearn.training.domain`), the DL1 parameters are read here.

- `a_distance`: the proxy A-distance of Ben-David et al. (2007): a linear
  classifier (scikit-learn logistic regression on standardised features) is
  trained to tell source from target on part of the events, its error ε is
  measured on the rest (stratified k-fold, so every event is tested once);
  ``A = 2 (1 - 2 ε)``: about 0 for one domain, 2 for separable ones.
- `dl1_statistics` / `feature_shift_table`: per-input-feature shift of the
  DL1 parameters and image statistics (intensity, width, length, NSB level:
  the spread of the charge of the pixels outside the cleaning mask), as a table.
- `embedding_figure`: a 2-D t-SNE embedding of the features coloured by domain.
"""

import warnings

import numpy as np
from astropy.table import Table, vstack

__all__ = [
    "SHIFT_COLUMNS",
    "a_distance",
    "dl1_statistics",
    "feature_shift_table",
    "embedding_figure",
]

#: per-event quantities compared between the domains: name -> (DL1 column or image statistic, unit)
SHIFT_COLUMNS = {
    "intensity": ("hillas_intensity", "p.e."),
    "width": ("hillas_width", "deg"),
    "length": ("hillas_length", "deg"),
    "n_pixels": ("morphology_n_pixels", ""),
    "leakage_width_2": ("leakage_intensity_width_2", ""),
    "nsb_level": ("image: std of the charge outside the cleaning mask", "p.e."),
    "nsb_mean": ("image: mean charge outside the cleaning mask", "p.e."),
}


def _balanced(source, target, rng):
    n = min(len(source), len(target))
    return source[rng.permutation(len(source))[:n]], target[rng.permutation(len(target))[:n]]


def a_distance(source, target, seed=0, folds=5, regularisation=1.0):
    """Proxy A-distance between two feature arrays ``(n, d)``.

    The larger domain is subsampled to the size of the smaller one, so that
    chance is an error of 0.5. Returns a dict with ``a_distance``,
    ``classifier_error``, the per-fold errors, ``n_source``, ``n_target`` (events
    used) and ``n_source_available``, ``n_target_available``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    rng = np.random.default_rng(seed)
    s, t = _balanced(source, target, rng)
    n = len(s)
    if n < folds:
        raise ValueError(f"{n} events per domain: too few for {folds}-fold cross-validation")
    x = np.concatenate([s, t])
    y = np.concatenate([np.zeros(n, int), np.ones(n, int)])
    errors, wrong = [], 0
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y):
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=regularisation, max_iter=5000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on separable domains
            classifier.fit(x[train], y[train])
        miss = int(np.sum(classifier.predict(x[test]) != y[test]))
        wrong += miss
        errors.append(miss / len(test))
    error = wrong / len(y)
    return {
        "a_distance": 2.0 * (1.0 - 2.0 * error),
        "classifier_error": error,
        "fold_errors": errors,
        "classifier": f"logistic regression on standardised features (C={regularisation}), {folds}-fold",
        "n_source": n,
        "n_target": n,
        "n_source_available": int(len(source)),
        "n_target_available": int(len(target)),
        "n_features": int(source.shape[1]) if source.ndim == 2 else 0,
    }


def _noise_outside_mask(image, mask):
    """Per event: std and mean of the charge of the pixels outside the cleaning mask."""
    outside = ~mask & np.isfinite(image)
    values = np.where(outside, image, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # events with no pixel outside
        return np.nanstd(values, axis=1), np.nanmean(values, axis=1)


def dl1_statistics(path, telescope_type, quality_query=None, chunk_size=1000, max_events=None):
    """Per-event `SHIFT_COLUMNS` of the ``telescope_type`` events of a DL1 file passing ``quality_query``
    (the first ``max_events`` of them, all by default).

    Read chunk by chunk as the cache reads them (`data.cache`), so any DL1 format the cache takes.
    """
    import contextlib

    from ..data.cache import _read_chunks

    parts, n, cleaner = [], 0, None
    with contextlib.closing(_read_chunks(path, telescope_type, chunk_size, simulated=False)) as chunks:
        for table in chunks:
            if quality_query is not None:
                table = table[quality_query.mask(table)]
            if "image_mask" not in table.colnames and len(table):
                cleaner = cleaner or _lstchain_cleaner(path)
                table["image_mask"] = [cleaner(int(t), image, times) for t, image, times in
                                       zip(table["tel_id"], np.asarray(table["image"]), np.asarray(table["peak_time"]))]
            parts.append(_event_statistics(table))
            n += len(table)
            if max_events is not None and n >= max_events:
                break
    if max_events is not None and parts:
        return vstack(parts)[:max_events]
    if not parts:
        return Table({name: np.zeros(0) for name in SHIFT_COLUMNS})
    return vstack(parts)


def _lstchain_cleaner(path):
    """lstchain files hold no cleaning masks: lstchain's own cleaning recomputes them (it gives the
    files' pixel counts, docs/lstchain.md), so the noise outside the mask is measured as for ctapipe files."""
    from ..data.inputs import read_subarray
    from ..io.lstchain_cleaning import LSTChainImageCleaner

    return LSTChainImageCleaner(read_subarray(path))


def _event_statistics(table):
    out = Table()
    for name, (column, _) in SHIFT_COLUMNS.items():
        if column in table.colnames:
            out[name] = np.asarray(table[column], dtype=np.float64)
    if "image_mask" in table.colnames:
        image, mask = np.asarray(table["image"], np.float64), np.asarray(table["image_mask"], bool)
        out["nsb_level"], out["nsb_mean"] = _noise_outside_mask(image, mask)
    return out


def feature_shift_table(source, target):
    """One row per quantity of `SHIFT_COLUMNS`: medians, means, spreads, the relative shift of
    the median, the standardised mean difference and the Kolmogorov-Smirnov statistic."""
    from scipy.stats import ks_2samp

    rows = []
    for name, (column, unit) in SHIFT_COLUMNS.items():
        if name not in source.colnames or name not in target.colnames:
            continue
        s = np.asarray(source[name], np.float64)
        t = np.asarray(target[name], np.float64)
        s, t = s[np.isfinite(s)], t[np.isfinite(t)]
        if len(s) == 0 or len(t) == 0:
            continue
        pooled = np.sqrt(0.5 * (s.var() + t.var()))
        median_s, median_t = np.median(s), np.median(t)
        rows.append({
            "feature": name,
            "definition": column,
            "unit": unit,
            "source_median": median_s,
            "target_median": median_t,
            "source_mean": s.mean(),
            "target_mean": t.mean(),
            "source_std": s.std(),
            "target_std": t.std(),
            "relative_median_shift": (median_t - median_s) / abs(median_s) if median_s != 0 else np.nan,
            "standardised_mean_difference": (t.mean() - s.mean()) / pooled if pooled > 0 else 0.0,
            "ks_statistic": float(ks_2samp(s, t).statistic),
            "n_source": len(s),
            "n_target": len(t),
        })
    names = ["feature", "definition", "unit", "source_median", "target_median", "source_mean", "target_mean",
             "source_std", "target_std", "relative_median_shift", "standardised_mean_difference", "ks_statistic",
             "n_source", "n_target"]
    return Table(rows=rows, names=names) if rows else Table(names=names)


def embedding_figure(source, target, path, seed=0, max_per_domain=1000, title=None):
    """t-SNE (scikit-learn) of the standardised features, source and target coloured apart, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    s = np.asarray(source)[rng.permutation(len(source))[:max_per_domain]]
    t = np.asarray(target)[rng.permutation(len(target))[:max_per_domain]]
    x = StandardScaler().fit_transform(np.concatenate([s, t]))
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.scatter(*embedded[: len(s)].T, s=6, alpha=0.6, label=f"source ({len(s)})", color="tab:blue")
    ax.scatter(*embedded[len(s) :].T, s=6, alpha=0.6, label=f"target ({len(t)})", color="tab:orange")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(title or "backbone features, t-SNE")
    ax.legend(markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
