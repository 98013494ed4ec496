"""Shower-to-shower fluctuations of simulated gammas at fixed energy (and impact).

Prints, at 10 deg zenith, the 16-84% half-width of the light-weighted mean slant depth of the
emission, and the 16-84% half-spread of the true LST-1 image intensity at fixed impact
distances: the fluctuations that limit the energy resolution.

    python benchmarks/shower_fluctuations.py [--n-showers 150] [--n-per-impact 30]
"""

import argparse

import astropy.units as u
import numpy as np

from ctapipe_gammalearn.simulation import AirShowerSimEventSource

IMPACTS = (20, 60, 100, 130, 160, 200, 300)  # m


def light_depths(source, rng, energy, n):
    """Light-weighted mean slant depth (g/cm2) of ``n`` gamma showers of ``energy`` TeV."""
    alt, az = source._pointing
    model = source.shower_model
    depths = []
    for _ in range(n):
        light = model.shower(rng, "gamma", energy, alt, az, 0.0, 0.0, source.observation_level)
        slant = model.atmosphere.vertical_depth(light.points.height) / (-light.axis[2])
        depths.append(np.average(slant, weights=light.points.yield_))
    return np.array(depths)


def intensities(source, rng, energy, impact, n):
    """True p.e. intensities of LST-1 for ``n`` gamma showers at ``impact`` m, on axis."""
    alt, az = source._pointing
    x, y = source.subarray.positions[1].to_value(u.m)[:2]
    out = []
    for _ in range(n):
        _, images = source.simulate_shower(rng, energy, alt, az, x, y + impact, [1])
        out.append(images[1].true_image.sum() if 1 in images else 0.0)
    return np.array(out, dtype=float)


def _half_width(values):
    q16, q84 = np.quantile(values, [0.16, 0.84])
    return (q84 - q16) / 2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-showers", type=int, default=150)
    parser.add_argument("--n-per-impact", type=int, default=30)
    args = parser.parse_args()
    source = AirShowerSimEventSource(n_events=1, seed=0, zenith=10.0, min_expected_pe=0.0)
    rng = np.random.default_rng(1)
    for energy in (0.1, 1.0):
        depth = light_depths(source, rng, energy, args.n_showers)
        print(f"E = {energy} TeV: mean depth of the light {np.median(depth):.0f} g/cm2, "
              f"16-84% half-width {_half_width(depth):.0f} g/cm2")
    print("\nE = 1 TeV, true LST-1 intensity: median (p.e.), 16-84% half-spread relative to it")
    for impact in IMPACTS:
        values = intensities(source, rng, 1.0, impact, args.n_per_impact)
        print(f"  {impact:4d} m: {np.median(values):7.0f}  ±{_half_width(values) / np.median(values):.2f}")


if __name__ == "__main__":
    main()
