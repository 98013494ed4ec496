"""Isothermal exponential atmosphere: depth, density and refractive index versus height."""

from dataclasses import dataclass

import numpy as np

__all__ = ["ExponentialAtmosphere"]


@dataclass(frozen=True)
class ExponentialAtmosphere:
    """rho(h) = rho0 exp(-h / H), heights in m above sea level, depths in g/cm2.

    The defaults give 1030 g/cm2 of vertical depth at sea level and n - 1 = 2.9e-4 there.
    """

    scale_height: float = 8400.0
    rho0: float = 1.226e-3  # g/cm3
    refractivity0: float = 2.9e-4  # n - 1 at sea level, proportional to density

    @property
    def total_depth(self):
        """Vertical depth at sea level, g/cm2."""
        return self.rho0 * self.scale_height * 100.0

    def density(self, height):
        return self.rho0 * np.exp(-np.asarray(height) / self.scale_height)

    def vertical_depth(self, height):
        return self.total_depth * np.exp(-np.asarray(height) / self.scale_height)

    def height(self, vertical_depth):
        """Inverse of `vertical_depth`."""
        return -self.scale_height * np.log(np.asarray(vertical_depth) / self.total_depth)

    def refractivity(self, height):
        """n - 1 at the given height."""
        return self.refractivity0 * np.exp(-np.asarray(height) / self.scale_height)

    def cherenkov_threshold(self, height):
        """Total energy (GeV) above which an electron emits Cherenkov light, m_e / sqrt(2 (n - 1))."""
        return 0.511e-3 / np.sqrt(2.0 * self.refractivity(height))

    def cherenkov_angle(self, height):
        """Cherenkov angle of an ultra-relativistic particle, rad."""
        return np.sqrt(2.0 * self.refractivity(height))

    def moliere_radius(self, height):
        """Moliere radius in m (9.6 g/cm2 of air divided by the local density)."""
        return 9.6 / self.density(height) / 100.0
