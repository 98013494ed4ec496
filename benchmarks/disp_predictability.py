"""Where the mono angular error comes from, prod5 LST against the simulator: the image axis's
miss of the true source (orientation), how well a forest predicts |disp| (the distance of
the source along the axis) from the image, per intensity bin; and the angular resolution
that follows (|disp| and head/tail forests, 5-fold: 68 % containment of the angular error,
per intensity and per true-energy bin, with its parts: the share of right head/tails, the
|disp| error and the true source's distance from the image axis).

prod5: the LST images of ``../shared/data/dl1_params_only`` (La Palma, zenith 20 deg,
pointing north, diffuse gammas, cleaned DL1 parameters with timing). Simulated: the part A
sample of ``simulation_realism.py`` (same array, trigger and pointing), read from its cache,
subsampled to prod5's size so that both forests learn from as many images.

    python benchmarks/simulation_realism.py --part a --cache DIR   # makes the sample
    python benchmarks/disp_predictability.py --cache DIR
"""

import argparse
import warnings

import numpy as np
from _realism_reference import prod5_lst_tables
from _realism_simulate import simulated_images
from astropy.table import Table
from simulation_realism import PROD5_LSTS, _with_true_fov
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.model_selection import KFold

#: ctapipe's effective focal length of the prod5 LST: the image centroids lie at x / f_eff
PROD5_LST_EFFECTIVE_FOCAL_LENGTH = 29.30565
INTENSITY_BINS = [(50, 100), (100, 200), (200, 400), (400, 800), (800, 3200), (3200, np.inf)]
#: coarser bins for the angular resolution (prod5 has a few hundred images)
RESOLUTION_INTENSITY_BINS = [(50, 200), (200, 800), (800, np.inf)]
ENERGY_BINS = [(0.02, 0.1), (0.1, 0.3), (0.3, 1.0), (1.0, np.inf)]
FEATURES = ["log_intensity", "width", "length", "wl", "skewness", "kurtosis", "leakage", "time_gradient"]


def prod5_gammas():
    """prod5 LST gamma images: centroid, axis angle, shape (deg) and the true source offset
    (small-angle alt/az offsets from the pointing, deg)."""
    to_deg = np.rad2deg(1.0 / PROD5_LST_EFFECTIVE_FOCAL_LENGTH)
    rows = []
    for _, p, s, pointing in prod5_lst_tables("gamma", "dl1"):
        alt0, az0 = pointing["array_altitude"], pointing["array_azimuth"]
        d_az = (np.deg2rad(s["true_az"]) - az0 + np.pi) % (2 * np.pi) - np.pi
        rows.append(Table(dict(
            x=p["hillas_x"] * to_deg, y=p["hillas_y"] * to_deg, psi=np.deg2rad(p["hillas_psi"]),
            # camera x grows with altitude, y with azimuth (checked on stereo axis crossings)
            source_x=np.rad2deg(np.deg2rad(s["true_alt"]) - alt0), source_y=np.rad2deg(d_az) * np.cos(alt0),
            intensity=p["hillas_intensity"], width=p["hillas_width"] * to_deg, length=p["hillas_length"] * to_deg,
            skewness=p["hillas_skewness"], kurtosis=p["hillas_kurtosis"], leakage=p["leakage_intensity_width_2"],
            time_gradient=p["timing_slope"] / to_deg, true_energy=s["true_energy"],
        )))
    from astropy.table import vstack

    return vstack(rows)


def simulated_gammas(cache):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = _with_true_fov(simulated_images(cache, "prod5array_gamma", "gamma", 0, 0, pointing=True,
                                            telescopes=PROD5_LSTS))
    return Table(dict(
        x=s["hillas_fov_lon"], y=s["hillas_fov_lat"], psi=np.deg2rad(s["hillas_psi"]),
        source_x=s["true_fov_lon"], source_y=s["true_fov_lat"], intensity=s["hillas_intensity"],
        width=s["hillas_width"], length=s["hillas_length"], skewness=s["hillas_skewness"],
        kurtosis=s["hillas_kurtosis"], leakage=s["leakage_intensity_width_2"],
        time_gradient=np.asarray(s["timing_slope"], dtype=float), true_energy=s["true_energy"],
    ))


def selected(t, max_offset=3.0):
    keep = (
        (t["intensity"] > 50) & (t["leakage"] < 0.2) & np.isfinite(t["width"]) & (t["width"] > 0)
        & (np.hypot(t["source_x"], t["source_y"]) < max_offset)
    )
    return t[keep]


def source_along_across(t):
    """The true source's offset from the image centroid along the image axis (signed: the
    head/tail) and across it, deg."""
    dx, dy = t["source_x"] - t["x"], t["source_y"] - t["y"]
    along = dx * np.cos(t["psi"]) + dy * np.sin(t["psi"])
    across = -dx * np.sin(t["psi"]) + dy * np.cos(t["psi"])
    return np.asarray(along, dtype=float), np.asarray(across, dtype=float)


def axis_errors(t):
    """|disp| along the axis and the axis's angle to the centroid -> source line, deg."""
    along, across = source_along_across(t)
    return np.abs(along), np.rad2deg(np.arctan2(np.abs(across), np.abs(along)))


def _features(t):
    columns = {
        "log_intensity": np.log10(t["intensity"]), "wl": t["width"] / t["length"],
        **{f: t[f] for f in FEATURES if f in t.colnames},
    }
    x = np.column_stack([np.asarray(columns[f], dtype=float) for f in FEATURES])
    x[~np.isfinite(x)] = -999.0
    return x


def predicted_disp(t, disp, seed=0):
    x = _features(t)
    out = np.empty(len(t))
    for fit, test in KFold(5, shuffle=True, random_state=seed).split(x):
        model = RandomForestRegressor(100, min_samples_leaf=5, n_jobs=2, random_state=seed)
        out[test] = model.fit(x[fit], disp[fit]).predict(x[test])
    return out


def angular_errors(t, seed=0):
    """Mono reconstruction of the source from the image by a |disp| forest and a head/tail
    forest (out of fold, 5-fold). Per image: the angular error (deg), whether the head/tail
    is right, the |disp| error along the axis and the true source's distance from the axis."""
    along, across = source_along_across(t)
    x = _features(t)
    disp = predicted_disp(t, np.abs(along), seed)
    sign = np.empty(len(t))
    for fit, test in KFold(5, shuffle=True, random_state=seed).split(x):
        classifier = RandomForestClassifier(100, min_samples_leaf=5, n_jobs=2, random_state=seed)
        sign[test] = np.where(classifier.fit(x[fit], along[fit] > 0).predict(x[test]), 1.0, -1.0)
    error = np.hypot(sign * disp - along, across)
    return dict(error=error, right=sign == np.sign(along), along=np.abs(disp - np.abs(along)), across=np.abs(across))


def resolution_per_bin(t, errors, column, bins):
    """Per bin of ``column``: images, 68 % containment of the angular error, share of right
    head/tails, 68 % quantiles of the |disp| error and of the distance from the axis."""
    rows = []
    for lo, hi in bins:
        k = (t[column] >= lo) & (t[column] < hi)
        rows.append((int(k.sum()), *(
            (np.percentile(errors["error"][k], 68), np.mean(errors["right"][k]),
             np.percentile(errors["along"][k], 68), np.percentile(errors["across"][k], 68))
            if k.sum() >= 15 else (np.nan,) * 4
        )))
    return np.array(rows, dtype=float)


def time_gradient_head_tail(t, bins):
    """Per intensity bin: images, the share whose time gradient's sign gives the head/tail
    (the same sign convention on both sides: the one most images of both samples follow),
    and the median |time gradient| (ns/deg)."""
    along, _ = source_along_across(t)
    gradient = np.asarray(t["time_gradient"], dtype=float)
    rows = []
    for lo, hi in bins:
        k = (t["intensity"] >= lo) & (t["intensity"] < hi) & np.isfinite(gradient)
        rows.append((int(k.sum()), np.mean(np.sign(gradient[k]) == -np.sign(along[k])), np.median(np.abs(gradient[k]))))
    return np.array(rows, dtype=float)


def per_bin(t, seed=0):
    disp, angle = axis_errors(t)
    relative = np.abs(predicted_disp(t, disp, seed) / disp - 1)
    rows = []
    for lo, hi in INTENSITY_BINS:
        k = (t["intensity"] >= lo) & (t["intensity"] < hi)
        rows.append((int(k.sum()), np.median(disp[k]), np.median(angle[k]), np.percentile(relative[k], 68))
                    if k.sum() >= 15 else (int(k.sum()), np.nan, np.nan, np.nan))
    return np.array(rows, dtype=float)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="/tmp/gammalearn_realism", help="simulation_realism.py's cache")
    parser.add_argument("--repeat", type=int, default=5, help="random subsamples of the simulated images")
    args = parser.parse_args()

    real = selected(prod5_gammas())
    sim = selected(simulated_gammas(args.cache))
    real_rows = per_bin(real)
    rng = np.random.default_rng(1)
    sim_rows = np.median([
        per_bin(sim[rng.choice(len(sim), size=min(len(real), len(sim)), replace=False)], seed)
        for seed in range(args.repeat)
    ], axis=0)
    resolution = {}
    for column, bins in (("intensity", RESOLUTION_INTENSITY_BINS), ("true_energy", ENERGY_BINS)):
        real_res = resolution_per_bin(real, angular_errors(real), column, bins)
        sim_res = np.median([
            resolution_per_bin(sub, angular_errors(sub, seed), column, bins)
            for seed, sub in enumerate(sim[rng.choice(len(sim), size=min(len(real), len(sim)), replace=False)]
                                       for _ in range(args.repeat))
        ], axis=0)
        resolution[column] = (bins, real_res, sim_res)
    print(f"prod5 LST gammas: {len(real)} images; simulated: {len(sim)}, {args.repeat} subsamples of "
          f"{min(len(real), len(sim))} (intensity > 50, leakage < 0.2, source within 3 deg)\n")
    print("| intensity (p.e.) | images prod5 / sim | median \\|disp\\| (deg) | axis angle to source, median (deg) "
          "| \\|disp\\| forest, 68% relative error |")
    print("|---|---|---|---|---|")
    for (lo, hi), r, s in zip(INTENSITY_BINS, real_rows, sim_rows):
        print(f"| {lo:.0f}–{hi:.0f} | {r[0]:.0f} / {s[0]:.0f} | {r[1]:.2f} / {s[1]:.2f} | {r[2]:.1f} / {s[2]:.1f} "
              f"| {r[3]:.2f} / {s[3]:.2f} |")
    real_tg = time_gradient_head_tail(real, RESOLUTION_INTENSITY_BINS)
    sim_tg = time_gradient_head_tail(sim, RESOLUTION_INTENSITY_BINS)
    print("\n| intensity (p.e.) | images prod5 / sim | time gradient's sign gives the head/tail | "
          "median \\|time gradient\\| (ns/deg) |")
    print("|---|---|---|---|")
    for (lo, hi), r, s in zip(RESOLUTION_INTENSITY_BINS, real_tg, sim_tg):
        print(f"| {lo:g}–{hi:g} | {r[0]:.0f} / {s[0]:.0f} | {r[1]:.2f} / {s[1]:.2f} | {r[2]:.2f} / {s[2]:.2f} |")
    for column, unit in (("intensity", "p.e."), ("true_energy", "TeV")):
        bins, real_res, sim_res = resolution[column]
        print(
            f"\n| {column.replace('_', ' ')} ({unit}) | images prod5 / sim | angular resolution 68 % prod5 / sim (deg) "
            "| ratio | head/tail right | \\|disp\\| error 68 % (deg) | source off the axis 68 % (deg) |"
        )
        print("|---|---|---|---|---|---|---|")
        for (lo, hi), r, s in zip(bins, real_res, sim_res):
            print(
                f"| {lo:g}–{hi:g} | {r[0]:.0f} / {s[0]:.0f} | {r[1]:.3f} / {s[1]:.3f} | {s[1] / r[1]:.2f} "
                f"| {r[2]:.2f} / {s[2]:.2f} | {r[3]:.2f} / {s[3]:.2f} | {r[4]:.2f} / {s[4]:.2f} |"
            )


if __name__ == "__main__":
    main()
