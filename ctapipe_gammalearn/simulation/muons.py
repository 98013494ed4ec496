"""Cherenkov ring (or arc) of a single muon hitting or passing near a mirror."""

import numpy as np

__all__ = ["muon_ring_photons"]


def _chord(phi, impact, mirror_radius):
    """Length of mirror crossed by the Cherenkov light emitted towards azimuth ``phi``.

    ``impact`` is the muon impact distance from the mirror centre; ``phi`` is measured
    from the impact direction (the standard muon-ring intensity model).
    """
    rho = impact / mirror_radius
    s = np.sin(phi)
    disc = 1.0 - (rho * s) ** 2
    root = np.sqrt(np.clip(disc, 0.0, None))
    if rho <= 1.0:
        return mirror_radius * (root + rho * np.cos(phi))
    # outside the mirror: the light only crosses it on the near side
    return np.where((disc > 0) & (np.cos(phi) < 0), 2 * mirror_radius * root, 0.0)


def muon_ring_photons(rng, mirror_radius, ring_radius_deg, pe_per_metre_rad, centre, impact, ring_width_deg=0.05):
    """Directions (fov_lon, fov_lat, deg) of the p.e. of one muon ring.

    ``centre`` is the muon direction in the telescope frame, ``pe_per_metre_rad`` the p.e.
    per metre of mirror chord and radian of ring azimuth (holds optical efficiency).
    """
    grid = np.linspace(0.0, 2 * np.pi, 721)
    density = _chord(grid - rng.uniform(0, 2 * np.pi), impact, mirror_radius)
    total = pe_per_metre_rad * np.trapezoid(density, grid)
    n = rng.poisson(max(total, 0.0))
    if n == 0:
        return np.zeros(0), np.zeros(0)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    phi = np.interp(rng.random(n) * cdf[-1], cdf, grid)
    radius = ring_radius_deg + ring_width_deg * rng.standard_normal(n)
    return centre[0] + radius * np.cos(phi), centre[1] + radius * np.sin(phi)
