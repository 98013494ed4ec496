"""Cherenkov light of emission points seen by one telescope: photon density, image direction, arrival time."""

from dataclasses import dataclass

import numpy as np
from scipy.special import exp1, i0e

from .atmosphere import ExponentialAtmosphere
from .emission import EmissionPoints

__all__ = ["AngularModel", "photons_at_telescope", "ground_to_fov", "fov_basis", "SPEED_OF_LIGHT"]

SPEED_OF_LIGHT = 0.299792458  # m/ns


@dataclass(frozen=True)
class AngularModel:
    """Angular spread of the emitting electrons around the sub-shower axis (rad): a Gaussian
    core and a tail, either a wider Gaussian or (``tail_shape="exponential"``) the exponential
    angular distribution of Cherenkov photons in air showers (Hillas 1982; Nerling et al. 2006)."""

    core_sigma: float = np.deg2rad(0.45)
    tail_sigma: float = np.deg2rad(3.0)
    tail_fraction: float = 0.7
    tail_shape: str = "exponential"
    absorption_length: float = 1800.0  # g/cm2, Rayleigh + aerosols over 300-600 nm


def _rice_density(alpha, theta_c, sigma):
    """Density per steradian of photon directions at angle ``alpha`` from the axis.

    A Cherenkov cone of half-angle ``theta_c`` around electron directions spread as a 2D
    Gaussian of width ``sigma``: the ring average of the Gaussian, a Rice distribution.
    """
    x = alpha * theta_c / sigma**2
    return i0e(x) * np.exp(-((alpha - theta_c) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)


def _exponential_density(alpha, theta_c, theta_0):
    """Density per steradian exp(-alpha/theta_0) / (2 pi theta_0 (alpha + theta_c)), normalised.

    Far from the axis it is Hillas' dN/dOmega ~ exp(-alpha/theta_0) / sin(alpha); the Cherenkov
    angle softens the 1/alpha near the axis. Normalisation: 1 - x e^x E1(x), x = theta_c/theta_0.
    """
    x = theta_c / theta_0
    norm = 1.0 - x * np.exp(x) * exp1(x)
    return np.exp(-alpha / theta_0) / (2 * np.pi * theta_0 * (alpha + theta_c) * norm)


def hillas_theta_0(threshold):
    """Hillas' width of the photons' angular distribution, 0.83 (E_thr/MeV)^-0.67 rad, from the
    local Cherenkov threshold ``threshold`` (GeV): the lower the air's density, the narrower."""
    threshold_mev = 1e3 * np.asarray(threshold)
    return 0.83 * threshold_mev**-0.67


def photons_at_telescope(
    points: EmissionPoints,
    telescope_position,
    mirror_area,
    atmosphere: ExponentialAtmosphere,
    obs_level,
    model: AngularModel = AngularModel(),
):
    """Expected Cherenkov photons of each emission point hitting the mirror (before efficiencies)."""
    to_tel = np.asarray(telescope_position)[None, :] - points.position
    distance = np.linalg.norm(to_tel, axis=1)
    cos_alpha = np.einsum("ij,ij->i", to_tel, points.direction) / distance
    alpha = np.arccos(np.clip(cos_alpha, -1.0, 1.0))
    theta_c = atmosphere.cherenkov_angle(points.height)
    age = np.clip(points.age, 0.4, 2.0) ** 1.5
    if model.tail_shape == "exponential":
        tail = _exponential_density(alpha, theta_c, hillas_theta_0(atmosphere.cherenkov_threshold(points.height)))
    else:
        tail = _rice_density(alpha, theta_c, model.tail_sigma * age)
    density = (1 - model.tail_fraction) * _rice_density(alpha, theta_c, model.core_sigma * age) + (
        model.tail_fraction * tail
    )
    depth_between = atmosphere.vertical_depth(obs_level + telescope_position[2]) - atmosphere.vertical_depth(
        points.height
    )
    cos_z = np.maximum(-points.direction[:, 2], 0.05)
    transmission = np.exp(-np.maximum(depth_between, 0.0) / cos_z / model.absorption_length)
    return points.yield_ * density / distance**2 * mirror_area * transmission


def fov_basis(pointing_alt, pointing_az):
    """Ground-frame unit vectors along +fov_lon and +fov_lat at the pointing (`ground_to_fov`'s axes)."""
    ce, se = np.cos(pointing_alt), np.sin(pointing_alt)
    ca, sa = np.cos(pointing_az), np.sin(pointing_az)
    return np.array([-sa, -ca, 0.0]), np.array([-se * ca, se * sa, ce])


def ground_to_fov(vectors, pointing_alt, pointing_az):
    """Directions (n, 3) in the ground frame -> TelescopeFrame (fov_lon, fov_lat) in deg.

    Same rotation as ctapipe's TelescopeFrame (a sky offset frame centred on the pointing),
    written out in numpy for speed.
    """
    x, y, z = vectors[:, 0], -vectors[:, 1], vectors[:, 2]  # ground (x N, y W) -> AltAz (x N, y E)
    ca, sa = np.cos(pointing_az), np.sin(pointing_az)
    x1 = x * ca + y * sa
    y1 = -x * sa + y * ca
    ce, se = np.cos(pointing_alt), np.sin(pointing_alt)
    x2 = x1 * ce + z * se
    z2 = -x1 * se + z * ce
    norm = np.sqrt(x2**2 + y1**2 + z2**2)
    return np.rad2deg(np.arctan2(y1, x2)), np.rad2deg(np.arcsin(z2 / norm))
