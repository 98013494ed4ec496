"""Sampling of primaries: power-law energies, core positions, arrival directions."""

import numpy as np

__all__ = ["sample_power_law", "sample_core", "sample_direction_in_cone", "fov_to_altaz"]


def sample_power_law(rng, e_min, e_max, index, size=None):
    """Energies following E^index between e_min and e_max (index < 0, e.g. -2)."""
    u = rng.random(size)
    if abs(index + 1.0) < 1e-9:
        return e_min * (e_max / e_min) ** u
    g = index + 1.0
    return (e_min**g + u * (e_max**g - e_min**g)) ** (1.0 / g)


def sample_core(rng, r_max, size=None):
    """Uniform in a disk of radius r_max on the ground: (x, y) in m."""
    r = r_max * np.sqrt(rng.random(size))
    phi = rng.uniform(0.0, 2 * np.pi, size)
    return r * np.cos(phi), r * np.sin(phi)


def sample_direction_in_cone(rng, r_min_deg, r_max_deg, size=None):
    """Field-of-view offset (fov_lon, fov_lat) in deg, uniform in solid angle in an annulus."""
    c_min, c_max = np.cos(np.deg2rad(r_min_deg)), np.cos(np.deg2rad(r_max_deg))
    theta = np.arccos(rng.uniform(c_max, c_min, size))
    phi = rng.uniform(0.0, 2 * np.pi, size)
    return np.rad2deg(theta) * np.cos(phi), np.rad2deg(theta) * np.sin(phi)


def fov_to_altaz(fov_lon_deg, fov_lat_deg, pointing_alt, pointing_az):
    """TelescopeFrame offset (deg) -> (alt, az) in rad: inverse of `cherenkov.ground_to_fov`."""
    lon, lat = np.deg2rad(fov_lon_deg), np.deg2rad(fov_lat_deg)
    x2, y1, z2 = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    ce, se = np.cos(pointing_alt), np.sin(pointing_alt)
    x1 = x2 * ce - z2 * se
    z = x2 * se + z2 * ce
    ca, sa = np.cos(pointing_az), np.sin(pointing_az)
    x = x1 * ca - y1 * sa
    y = x1 * sa + y1 * ca
    return np.arcsin(np.clip(z, -1, 1)), np.mod(np.arctan2(y, x), 2 * np.pi)
