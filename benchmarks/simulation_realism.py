"""Realism of ctapipe-gammalearn-simulate against real Monte Carlo and real LST-1 performance.

Computes both sides of every comparison:
  A. prod5 LST (La Palma, zenith 20 deg, diffuse gammas and protons, intensity > 50), simulated
     for the prod5 array (4 LSTs, 15 MSTs) with a two-telescope trigger as prod5 was: Hillas
     width and length quantiles of the cleaned DL1 images and of the true p.e. images; 5-fold
     Hillas+RF gamma/proton AUC on the same features.
  B. mono LST-1 Hillas+RF as in the LST-1 Crab paper (point-like gammas at its test node,
     zenith 10 deg, azimuth 102.2 deg, 0.4 deg wobble; models trained on diffuse gammas and
     protons, at --train-nodes; lstchain's features; the paper's NSB tuning and cleaning):
     68% angular resolution (right head/tail) and energy resolution per true-energy bin at
     gamma efficiency 0.9, and AUC per intensity bin, against lst1_performance.
  C. a gallery of simulated and sim_telarray LST images.
Prints markdown tables; writes figures to docs/figures/simulation_*.png.

    python benchmarks/simulation_realism.py [--cache DIR] [--n-gamma N] [--n-proton N] [--n-train-gamma N]
        [--train-nodes ZEN/AZ,...] [--sim-option=--Component.trait=value ...]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table
from ctapipe.reco.preprocessing import horizontal_to_telescope

from ctapipe_gammalearn.simulation.atmosphere import ExponentialAtmosphere

sys.path.insert(0, str(Path(__file__).parent))
from _realism_analysis import (  # noqa: E402
    PROD5_FEATURES,
    cross_validated_auc,
    mono_performance,
    quantiles,
)
from _realism_images import plot_gallery  # noqa: E402
from _realism_reference import (  # noqa: E402
    LST1_AUC,
    SHARED_DATA,
    lst1_performance,
    prod5_lst_images,
    simtel_lst_images,
)
from _realism_simulate import simulated_images  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
#: a ctapipe file of the prod5 La Palma production: its subarray is the prod5 array (4 LSTs, 15 MSTs)
PROD5_ARRAY = SHARED_DATA / "dl1" / "gamma__history_meta_75.dl1.h5"
PROD5_LSTS = [1, 2, 3, 4]


def _with_true_fov(table):
    lon, lat = horizontal_to_telescope(
        u.Quantity(table["true_alt"], u.deg), u.Quantity(table["true_az"], u.deg),
        u.Quantity(table["telescope_pointing_altitude"], u.deg), u.Quantity(table["telescope_pointing_azimuth"], u.deg),
    )
    table["true_fov_lon"], table["true_fov_lat"] = lon.to_value(u.deg), lat.to_value(u.deg)
    table["hillas_psi"] = u.Quantity(table["hillas_psi"], u.deg).to_value(u.deg)
    return table


def _simulate(args, name, particle, seed, options, pointing=False, n_events=None, telescopes=None):
    if n_events is None:
        n_events = args.n_gamma if particle == "gamma" else args.n_proton
    return simulated_images(
        args.cache, name, particle, n_events, seed + args.seed_offset,
        [*options, *args.sim_option], overwrite=args.resimulate, pointing=pointing, telescopes=telescopes,
    )


def _selected(table, min_intensity=50):
    intensity = np.asarray(table["hillas_intensity"], dtype=float)
    return table[np.isfinite(intensity) & (intensity > min_intensity)]


def _true_parameters(table):
    """The parameters of the true p.e. images under the plain names."""
    out = Table()
    for name in ("hillas_intensity", "hillas_width", "hillas_length"):
        out[name] = table[f"true_{name}"]
    for name in ("true_energy", "true_impact_distance"):
        out[name] = table[name]
    return out


def _x_max_height(table):
    """Height (km a.s.l.) of the simulated X_max in the simulator's default atmosphere."""
    alt = np.deg2rad(np.asarray(table["true_alt"], dtype=float))
    vertical = np.asarray(table["true_x_max"], dtype=float) * np.sin(alt)
    return ExponentialAtmosphere().height(vertical) / 1000.0


def _fmt(values, f="{:.3f}"):
    return " / ".join(f.format(v) for v in values)


def part_a(args):
    # prod5 kept an LST image only when its array (4 LSTs, 15 MSTs) triggered: the same array,
    # taken from a ctapipe file of that production, with a two-telescope trigger; the run
    # headers' E^-2 spectra, pointing (zenith 20 deg, azimuth 0: north, as both prod5 files'
    # pointing tables say), view cones and scatter radii
    array = [f"--subarray={PROD5_ARRAY}", "--AirShowerSimEventSource.min_telescopes=2", "--zenith=20", "--azimuth=0"]
    sims = {
        "gamma": _simulate(args, "prod5array_gamma", "gamma", 101, [
            *array, "--viewcone-max=8", "--core-max=1400", "--energy-min=0.01", "--energy-max=300",
        ], telescopes=PROD5_LSTS),
        "proton": _simulate(args, "prod5array_proton", "proton", 102, [
            *array, "--viewcone-max=8", "--core-max=1900", "--energy-min=0.02", "--energy-max=600",
        ], telescopes=PROD5_LSTS),
    }
    for table in sims.values():
        table["true_x_max_height"] = _x_max_height(table)
    real = {p: prod5_lst_images(p, "dl1") for p in ("gamma", "proton")}
    real_true = {p: prod5_lst_images(p, "true") for p in ("gamma", "proton")}
    sims_true = {p: _true_parameters(t) for p, t in sims.items()}
    levels = {
        "cleaned DL1 images (tailcuts 10/5/2 on both sides)": (real, sims),
        "true p.e. images (every pixel with a p.e.)": (real_true, sims_true),
    }
    rows = []
    print("\n### A. prod5 LST vs simulation (zenith 20 deg, intensity > 50)\n")
    print("| images | particle | quantity | prod5 q16 / q50 / q84 (deg), n | simulated, n | relative difference |")
    print("|---|---|---|---|---|---|")
    for level, (ref_tables, sim_tables) in levels.items():
        for particle in ("gamma", "proton"):
            ref, sim = _selected(ref_tables[particle]), _selected(sim_tables[particle])
            for col in ("hillas_width", "hillas_length"):
                q_ref, q_sim = quantiles(ref[col]), quantiles(sim[col])
                diff = q_sim / q_ref - 1
                rows.append((level, particle, col, list(q_ref), list(q_sim)))
                print(f"| {level} | {particle} | {col} | {_fmt(q_ref)}, {len(ref)} | {_fmt(q_sim)}, {len(sim)} | "
                      f"{_fmt(diff * 100, '{:+.0f}%')} |")
    within = [abs(s / r - 1) <= 0.25 for *_, ref, sim in rows for r, s in zip(ref, sim)]
    print(f"\nQuantiles within 25% of prod5: {sum(within)} of {len(within)}")
    auc_sim = cross_validated_auc(_selected(sims["gamma"]), _selected(sims["proton"]), PROD5_FEATURES)
    auc_ref = cross_validated_auc(_selected(real["gamma"]), _selected(real["proton"]), PROD5_FEATURES)
    print(f"\nHillas+RF gamma/proton AUC on the cleaned images (5-fold, same features): prod5 {auc_ref:.3f}, "
          f"simulated {auc_sim:.3f} (difference {auc_sim - auc_ref:+.3f})")
    print("\nSame pipeline (ctapipe 0.28 default cleaning) against the sim_telarray LST images of dl1/:\n")
    print("| particle | quantity | sim_telarray q16 / q50 / q84 (deg), n | simulated | relative difference |")
    print("|---|---|---|---|---|")
    for particle in ("gamma", "proton"):
        simtel = _selected(simtel_lst_images(particle))
        for col in ("hillas_width", "hillas_length"):
            q_ref, q_sim = quantiles(simtel[col]), quantiles(_selected(sims[particle])[col])
            print(f"| {particle} | {col} | {_fmt(q_ref)}, {len(simtel)} | {_fmt(q_sim)} | "
                  f"{_fmt((q_sim / q_ref - 1) * 100, '{:+.0f}%')} |")
    truth = _shower_truth(real, sims)
    truth_light = _light_far_from_the_axis(real_true["gamma"], sims_true["gamma"])
    _plot_distributions(sims, real)
    return dict(quantiles=rows, auc_prod5=auc_ref, auc_sim=auc_sim, shower_truth=truth, far_light=truth_light)


#: impact-distance bins (m) of the light comparison
IMPACT_BINS = [(0, 140), (140, 260), (260, 340), (340, 450), (450, 700)]


def _light_far_from_the_axis(real_true, sim_true):
    """Median true p.e. per TeV of the gamma images against the distance from the shower axis."""
    print("\nGamma true images (intensity > 50): median intensity per TeV of true energy (p.e./TeV), "
          "by distance from the shower axis, prod5 / simulated (images):\n")
    print("| E_true (TeV) | " + " | ".join(f"{lo}–{hi} m" for lo, hi in IMPACT_BINS) + " |")
    print("|---|" + "---|" * len(IMPACT_BINS))
    rows = []
    for e_lo, e_hi in ((0.3, 1.0), (1.0, 3.0)):
        cells = []
        for lo, hi in IMPACT_BINS:
            cell = []
            for t in (_selected(real_true), _selected(sim_true)):
                energy = np.asarray(t["true_energy"], dtype=float)
                impact = np.asarray(t["true_impact_distance"], dtype=float)
                k = (energy >= e_lo) & (energy < e_hi) & (impact >= lo) & (impact < hi)
                per_tev = np.asarray(t["hillas_intensity"], dtype=float)[k] / energy[k]
                cell.append((np.median(per_tev) if k.sum() >= 5 else np.nan, int(k.sum())))
            cells.append(cell)
        rows.append((e_lo, e_hi, cells))
        print(f"| {e_lo:g}–{e_hi:g} | " + " | ".join(
            f"{r:.0f} / {s:.0f} ({nr} / {ns})" for (r, nr), (s, ns) in cells) + " |")
    return rows


#: true-energy bins (TeV) of the shower-truth comparison
TRUTH_ENERGY_BINS = [(0.03, 0.1), (0.1, 0.3), (0.3, 1.0), (1.0, 3.0), (3.0, 30.0)]


def _shower_truth(real, sims):
    """Where the selected images come from, per true-energy bin: the showers' X_max (slant,
    g/cm2, and its height a.s.l., km) and the telescope's distance from the shower axis (m),
    prod5 against simulated. The images' geometry follows the height: prod5's depths are put
    on it through the US standard atmosphere, the simulated ones through the simulator's own."""
    print("\nShower truth of the selected images (cleaned, intensity > 50), median X_max (g/cm²), its "
          "height (km a.s.l.) and impact distance q50 / q84 (m):\n")
    print("| particle | E_true (TeV) | images prod5 / sim | X_max prod5 / sim | X_max height prod5 / sim "
          "| impact q50 / q84 prod5 | simulated |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for particle in ("gamma", "proton"):
        ref, sim = _selected(real[particle]), _selected(sims[particle])
        for lo, hi in TRUTH_ENERGY_BINS:
            sides = []
            for t in (ref, sim):
                energy = np.asarray(t["true_energy"], dtype=float)
                k = (energy >= lo) & (energy < hi)
                impact = np.asarray(t["true_impact_distance"], dtype=float)[k]
                x_max = np.asarray(t["true_x_max"], dtype=float)[k]
                height = np.asarray(t["true_x_max_height"], dtype=float)[k]
                sides.append((int(k.sum()), *(
                    (np.median(x_max), np.median(height), *np.percentile(impact, [50, 84])) if k.sum() >= 10
                    else (np.nan,) * 4
                )))
            (n_r, x_r, h_r, r50, r84), (n_s, x_s, h_s, s50, s84) = sides
            rows.append((particle, lo, hi, sides))
            print(f"| {particle} | {lo:g}–{hi:g} | {n_r} / {n_s} | {x_r:.0f} / {x_s:.0f} | {h_r:.1f} / {h_s:.1f} "
                  f"| {r50:.0f} / {r84:.0f} | {s50:.0f} / {s84:.0f} |")
    return rows


#: the Crab paper's LST-1 MC as its analysis saw it: tuned to the Crab field's night sky with
#: +1.62 p.e. of Poisson noise per pixel (lstchain image_modifier; its lstmcpipe config
#: 20221021_crab_full_lstchain097) on the dark-sky 1.8, and cleaned with tailcuts 8/4
LST1_CRAB_MC = [
    "--DetectorResponse.nsb_pe=3.4", "--TailcutsImageCleaner.picture_threshold_pe=8",
    "--TailcutsImageCleaner.boundary_threshold_pe=4",
]


#: the paper's test node (zenith 10 deg, azimuth 102.199 deg: "node_theta_10.0_az_102.199_")
LST1_TEST_NODE = (10.0, 102.199)


def _parse_nodes(text):
    """"zenith/azimuth,..." (deg) -> [(zenith, azimuth), ...]"""
    return [tuple(float(v) for v in node.split("/")) for node in text.split(",") if node]


def _training_sample(args, name, particle, seed, options, n_events):
    """Diffuse training events, as many from each of ``args.train_nodes`` (pointings)."""
    nodes = _parse_nodes(args.train_nodes)
    tables = []
    for i, (zenith, azimuth) in enumerate(nodes):
        node_name = name if nodes == [LST1_TEST_NODE] else f"{name}_zen{zenith:g}_az{azimuth:g}"
        tables.append(_simulate(args, node_name, particle, seed + 1000 * i, [
            *options, f"--zenith={zenith}", f"--azimuth={azimuth}",
        ], pointing=True, n_events=max(1, n_events // len(nodes))))
    from astropy.table import vstack

    return vstack(tables)


def part_b(args):
    test_pointing = [f"--zenith={LST1_TEST_NODE[0]}", f"--azimuth={LST1_TEST_NODE[1]}"]
    gammas = _with_true_fov(_simulate(args, "lst1_point_gamma", "gamma", 201, [
        *LST1_CRAB_MC, *test_pointing, "--wobble=0.4", "--core-max=700", "--energy-min=0.02", "--energy-max=20",
        "--spectral-index=-1.5",
    ], pointing=True))
    # the models are trained on diffuse gammas and protons (as for LST-1, at the training
    # nodes given) and applied to the point source
    diffuse = _with_true_fov(_training_sample(args, "lst1_diffuse_gamma", "gamma", 203, [
        *LST1_CRAB_MC, "--viewcone-max=2.5", "--core-max=700", "--energy-min=0.02", "--energy-max=20",
        "--spectral-index=-1.5",
    ], args.n_train_gamma or args.n_gamma))
    protons = _training_sample(args, "lst1_diffuse_proton", "proton", 202, [
        *LST1_CRAB_MC, "--viewcone-max=3", "--core-max=1000", "--energy-min=0.05", "--energy-max=50",
    ], args.n_proton)
    gammas, diffuse, protons = _selected(gammas), _selected(diffuse), _selected(protons)
    if args.max_leakage is not None:
        # a check, not the paper's procedure as far as it is known: LST's IRF tools also
        # drop images with leakage_intensity_width_2 above 0.2
        gammas, diffuse, protons = (
            t[np.asarray(t["leakage_intensity_width_2"], dtype=float) <= args.max_leakage]
            for t in (gammas, diffuse, protons)
        )
    ref = lst1_performance("10.00", "0.9")
    in_range = (ref["energy_min"] >= 0.05) & (ref["energy_max"] <= 12.7)
    ref = ref[in_range]
    bins = np.append(np.asarray(ref["energy_min"]), ref["energy_max"][-1])
    ang, eres, counts, aucs, right_sign = mono_performance(
        diffuse, gammas, protons, bins, intensity_bins=list(LST1_AUC)
    )
    print("\n### B. Mono LST-1 Hillas+RF: simulation vs real LST-1 (zenith 10 deg, gamma efficiency 0.9)\n")
    print("| E_true (TeV) | gammas | ang. res. 68% sim / LST-1 (deg) | ratio | E res. sim / LST-1 | ratio |")
    print("|---|---|---|---|---|---|")
    for i, row in enumerate(ref):
        print(f"| {row['energy_min']:.3g}–{row['energy_max']:.3g} | {counts[i]} | {ang[i]:.3f} / "
              f"{row['angular_resolution']:.3f} | {ang[i] / row['angular_resolution']:.2f} | {eres[i]:.3f} / "
              f"{row['energy_resolution']:.3f} | {eres[i] / row['energy_resolution']:.2f} |")
    ratio_ang, ratio_e = ang / ref["angular_resolution"], eres / ref["energy_resolution"]
    measured = np.isfinite(ratio_ang)
    print(f"\nWithin 30% of LST-1 (bins with >= 100 gammas: {measured.sum()} of {len(ref)}): angular resolution in "
          f"{np.sum(np.abs(ratio_ang[measured] - 1) <= 0.3)}, energy resolution in "
          f"{np.sum(np.abs(ratio_e[measured] - 1) <= 0.3)}; "
          f"head/tail right for {right_sign:.1%} of the selected gammas")
    print("\n| intensity (p.e.) | gammas / protons | AUC sim | AUC LST-1 | difference |")
    print("|---|---|---|---|---|")
    for key, (auc, n_g, n_p) in aucs.items():
        print(f"| {key[0]}–{key[1]} | {n_g} / {n_p} | {auc:.3f} | {LST1_AUC[key]:.2f} | {auc - LST1_AUC[key]:+.3f} |")
    _plot_performance(ref, ang, eres)
    return dict(
        energy_bins=bins.tolist(),
        angular_resolution=list(map(float, ang)),
        energy_resolution=list(map(float, eres)),
        auc={f"{k[0]}-{k[1]}": v[0] for k, v in aucs.items()},
        right_sign_fraction=right_sign,
    )


def _plot_distributions(sims, real):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 7), layout="constrained")
    for row, particle in enumerate(("gamma", "proton")):
        for col, name in enumerate(("hillas_width", "hillas_length")):
            ax = axes[row, col]
            bins = np.linspace(0, 0.5 if name == "hillas_width" else 1.2, 40)
            for label, table in (("prod5 (sim_telarray)", real[particle]), ("this simulator", sims[particle])):
                ax.hist(np.asarray(_selected(table)[name]), bins=bins, density=True, histtype="step", label=label)
            ax.set_xlabel(f"{name} / deg")
            ax.set_title(f"{particle}, cleaned images, intensity > 50")
    axes[0, 0].legend()
    fig.savefig(FIGURES / "simulation_hillas_vs_prod5.png", dpi=90)


def _plot_performance(ref, ang, eres):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centers = np.sqrt(ref["energy_min"] * ref["energy_max"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    axes[0].plot(centers, ref["angular_resolution"], "o-", label="real LST-1 (Crab paper MC)")
    axes[0].plot(centers, ang, "s-", label="this simulator, same method")
    axes[0].set_ylabel("68% angular resolution / deg")
    axes[1].plot(centers, ref["energy_resolution"], "o-")
    axes[1].plot(centers, eres, "s-")
    axes[1].set_ylabel("energy resolution")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("true energy / TeV")
    axes[0].legend()
    fig.savefig(FIGURES / "simulation_lst1_performance.png", dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="/tmp/gammalearn_realism", help="where the simulated files go")
    parser.add_argument("--n-gamma", type=int, default=4000)
    parser.add_argument("--n-proton", type=int, default=1500)
    parser.add_argument(
        "--n-train-gamma",
        type=int,
        default=16000,
        help="diffuse gammas the part-B models train on (0: --n-gamma)",
    )
    parser.add_argument(
        "--train-nodes",
        default=f"{LST1_TEST_NODE[0]}/{LST1_TEST_NODE[1]}",
        help="part B: pointings 'zenith/azimuth,...' (deg) of the training samples, shared equally; the paper's"
        " models trained on nodes along the Crab's declination, e.g. 6.0/180,16.087/108.09,16.087/251.91",
    )
    parser.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="added to every sample's seed: another draw of all samples, to see the figures' spread "
        "(use its own --cache)",
    )
    parser.add_argument("--resimulate", action="store_true", help="ignore cached simulated files")
    parser.add_argument("--part", choices=["a", "b", "both"], default="both")
    parser.add_argument(
        "--max-leakage",
        type=float,
        default=None,
        help="part B: also drop images with leakage_intensity_width_2 above this (all samples)",
    )
    parser.add_argument(
        "--sim-option",
        action="append",
        default=[],
        help="extra option for every simulation, e.g. --sim-option=--DetectorResponse.psf_sigma=0.06",
    )
    args = parser.parse_args()
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    FIGURES.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {}
    if args.part in ("a", "both"):
        results["prod5"] = part_a(args)
    if args.part in ("b", "both"):
        results["lst1"] = part_b(args)
    if args.part in ("a", "both"):
        cache = Path(args.cache)
        plot_gallery(
            SHARED_DATA,
            {p: cache / f"prod5array_{p}.dl1.h5" for p in ("gamma", "proton")},
            FIGURES / "simulation_images.png",
        )
    (Path(args.cache) / "realism.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
