"""Dish optics beyond the Gaussian PSF: third-order coma of a dish whose images of off-axis
sources lie farther out than its equivalent focal length predicts.

A ray at field angle θ (a vector in the field of view) reflected at the dish point p (a
vector in the aperture, m) lands, to third order, at θ + K/f² (2 (θ·p) p + |p|² θ): the
comet-shaped image of a paraboloid, three times longer radially than across. Over a
uniformly lit dish of radius R its centroid lies at θ (1 + K R²/f²), which is what the
effective focal length of ctapipe's optics describes: f_eff / f_eq = 1 + K R²/f². So the
coma of each telescope follows from its optics (LST: K ≈ 0.30, a paraboloid's 1/4 plus the
facets' share; NectarCam's Davies-Cotton dish: about 0.2).
"""

import numpy as np

__all__ = ["coma_coefficient", "with_coma"]


def coma_coefficient(equivalent_focal_length, effective_focal_length, mirror_radius):
    """K / f² (1/m²) of the dish; 0 when the effective focal length is unknown or not longer."""
    ratio = effective_focal_length / equivalent_focal_length
    if not np.isfinite(ratio) or ratio <= 1.0 or mirror_radius <= 0:
        return 0.0
    return float((ratio - 1.0) / mirror_radius**2)


def with_coma(fov_lon, fov_lat, p_lon, p_lat, coefficient):
    """Field angles (any unit) after coma, for rays reflected at (p_lon, p_lat) m on the dish."""
    dot = fov_lon * p_lon + fov_lat * p_lat
    rho2 = p_lon**2 + p_lat**2
    return (
        fov_lon + coefficient * (2.0 * dot * p_lon + rho2 * fov_lon),
        fov_lat + coefficient * (2.0 * dot * p_lat + rho2 * fov_lat),
    )
