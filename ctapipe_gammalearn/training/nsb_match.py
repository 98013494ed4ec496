"""Matched NSB injection (``--nsb-match FILES``): the Poisson noise the source images lack.

The per-pixel noise of the target (observed runs) and of the source (the
training simulation) is estimated from their images with
`ctapipe_gammalearn.data.noise.estimate_pixel_noise` (sky-pedestal events where
the file has some, else the pixels outside the cleaning masks). Per pixel, the
missing variance ``sigma_t^2 - sigma_s^2`` (floored at 0) is the mean of the
Poisson light to add: a Poisson count's variance is its mean
in p.e. The training batches then get ``Poisson(lambda_i) - lambda_i`` per pixel
(pedestal-subtracted, as in real data), see `augment.Augmentation`.
"""

import warnings

import numpy as np

__all__ = ["match_nsb"]


def _pixel_std(paths, n_pixels, role, method=None):
    """Per-pixel median of the per-file noise estimates; their summaries."""
    from ..data.inputs import DL1InputError
    from ..data.noise import estimate_pixel_noise

    stds, summaries = [], []
    for path in paths:
        try:
            std, summary = estimate_pixel_noise(path, method=method)
        except (ValueError, KeyError) as err:
            raise DL1InputError(f"{path}: cannot estimate the pixel noise of this {role} file ({err})") from None
        if len(std) != n_pixels:
            raise DL1InputError(f"{path}: noise estimate for {len(std)} pixels, the training camera has {n_pixels}")
        stds.append(std)
        summaries.append({"path": str(path), **{k: v for k, v in summary.items() if k != "nominal"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels without any estimate
        return np.nanmedian(np.stack(stds), axis=0), summaries


def _percentiles(values):
    good = values[np.isfinite(values)]
    if len(good) == 0:
        return {"median": None, "p16": None, "p84": None, "mean": None}
    p16, median, p84 = np.percentile(good, [16, 50, 84])
    return {"median": float(median), "p16": float(p16), "p84": float(p84), "mean": float(good.mean())}


def match_nsb(target_paths, source_paths, n_pixels):
    """``(extra_pe, record)``: the mean extra Poisson p.e. per pixel ``(n_pixels,)`` and the
    estimates behind it (per file and per camera), for the report.

    Both are estimated from their images (``method="images"``: sky-pedestal events where
    the file has some, else the pixels outside the cleaning masks), so that the difference
    is between two estimates of one quantity: a simulation has no pedestal monitoring,
    and the pedestal and image estimates differ slightly.
    """
    target_std, target_files = _pixel_std(target_paths, n_pixels, "--nsb-match", method="images")
    source_std, source_files = _pixel_std(source_paths, n_pixels, "training", method="images")
    gap = target_std**2 - source_std**2
    fill = np.nanmedian(gap) if np.isfinite(gap).any() else 0.0
    gap = np.where(np.isfinite(gap), gap, fill)
    extra = np.clip(gap, 0.0, None).astype(np.float32)
    record = {
        "target_files": target_files,
        "source_files": source_files,
        "target_pixel_std_pe": _percentiles(target_std),
        "source_pixel_std_pe": _percentiles(source_std),
        "extra_poisson_pe": _percentiles(extra.astype(np.float64)),
        "n_pixels_without_gap": int(np.sum(gap <= 0)),
        "rule": "extra_pe = max(target_std^2 - source_std^2, 0) per pixel; NaN pixels get the camera median",
    }
    return extra, record
