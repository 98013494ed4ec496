"""Physics quantities <-> network targets, with astropy units at the boundary.

Network targets:
- ``log10_energy``: log10(E / TeV)
- ``fov_offset``: (fov_lon, fov_lat) of the true source in the TelescopeFrame of
  the observing telescope, in deg
- ``impact``: (x, y) of the shower core minus the telescope position, ground
  frame, in m
"""

import astropy.units as u
import numpy as np
from ctapipe.reco.preprocessing import horizontal_to_telescope

__all__ = [
    "energy_to_target",
    "target_to_energy",
    "altaz_to_fov_offset",
    "fov_offset_to_altaz",
    "core_to_impact",
    "log10_energy_sigma_to_energy_uncert",
]


@u.quantity_input(energy=u.TeV)
def energy_to_target(energy):
    """log10(E / TeV) as float32."""
    return np.log10(energy.to_value(u.TeV)).astype(np.float32)


def target_to_energy(log10_energy):
    """Inverse of `energy_to_target`."""
    return u.Quantity(10.0 ** np.asarray(log10_energy, dtype=np.float64), u.TeV)


def log10_energy_sigma_to_energy_uncert(log10_energy, sigma_log10):
    """First-order propagation of a log10(E) standard deviation to TeV."""
    energy = target_to_energy(log10_energy)
    return energy * np.log(10.0) * np.asarray(sigma_log10, dtype=np.float64)


@u.quantity_input(alt=u.deg, az=u.deg, pointing_alt=u.deg, pointing_az=u.deg)
def altaz_to_fov_offset(alt, az, pointing_alt, pointing_az):
    """Source direction in the telescope frame, (fov_lon, fov_lat) in deg."""
    lon, lat = horizontal_to_telescope(alt, az, pointing_alt, pointing_az)
    return lon.to(u.deg), lat.to(u.deg)


@u.quantity_input(fov_lon=u.deg, fov_lat=u.deg, pointing_alt=u.deg, pointing_az=u.deg)
def fov_offset_to_altaz(fov_lon, fov_lat, pointing_alt, pointing_az):
    """Inverse of `altaz_to_fov_offset`: (alt, az) in deg.

    The same rotation as ctapipe's ``telescope_to_horizontal`` (TelescopeFrame ->
    AltAz), written out in numpy: astropy's frame machinery costs about 1.5 ms per
    call, which the per-event path pays once per event.
    """
    lon, lat = np.deg2rad(fov_lon.to_value(u.deg)), np.deg2rad(fov_lat.to_value(u.deg))
    alt0, az0 = np.deg2rad(pointing_alt.to_value(u.deg)), np.deg2rad(pointing_az.to_value(u.deg))
    # unit vector in the telescope frame, then rotated back by Rz(-az0) Ry(alt0)
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    x, z = x * np.cos(alt0) - z * np.sin(alt0), x * np.sin(alt0) + z * np.cos(alt0)
    x, y = x * np.cos(az0) - y * np.sin(az0), x * np.sin(az0) + y * np.cos(az0)
    alt = np.arctan2(z, np.hypot(x, y))
    az = np.mod(np.arctan2(y, x), 2 * np.pi)
    return u.Quantity(np.rad2deg(alt), u.deg), u.Quantity(np.rad2deg(az), u.deg)


@u.quantity_input(core_x=u.m, core_y=u.m, tel_x=u.m, tel_y=u.m)
def core_to_impact(core_x, core_y, tel_x, tel_y):
    """Core position relative to the telescope in the ground frame, in m."""
    return (core_x - tel_x).to(u.m), (core_y - tel_y).to(u.m)
