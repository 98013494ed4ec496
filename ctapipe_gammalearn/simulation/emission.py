"""Cherenkov emission points along the sub-showers (photon bunches before the telescopes)."""

from dataclasses import dataclass

import numpy as np

from .atmosphere import ExponentialAtmosphere
from .cascade import SubShowers, perpendicular_basis
from .longitudinal import CRITICAL_ENERGY, RADIATION_LENGTH, sample_greisen_depth, shower_age

__all__ = ["EmissionPoints", "sample_emission_points", "lateral_offsets", "threshold_factor"]


@dataclass
class EmissionPoints:
    """Points on the sub-shower axes; each one stands for ``yield_`` Cherenkov photons."""

    position: np.ndarray  # (m, 3) ground frame, m above observation level, one lateral draw
    axis_position: np.ndarray  # (m, 3) the same point on the sub-shower axis
    direction: np.ndarray  # (m, 3) downward axis of the emitting sub-shower
    height: np.ndarray  # (m,) m a.s.l.
    age: np.ndarray  # (m,)
    yield_: np.ndarray  # (m,) photons (300-600 nm) emitted
    e1: np.ndarray  # (m, 3) unit vectors perpendicular to ``direction``
    e2: np.ndarray  # (m, 3)

    def __len__(self):
        return len(self.height)


def threshold_factor(atmosphere, height, age=1.0, scale=0.030):
    """Share of shower electrons above the Cherenkov threshold.

    The threshold rises with height; the electron spectrum softens with age (the typical
    electron energy ``scale`` at the maximum falls as age^2), so old showers emit little.
    """
    threshold = atmosphere.cherenkov_threshold(height)
    return (1.0 + threshold * np.asarray(age) ** 2 / scale) ** -2


def sample_emission_points(
    subshowers: SubShowers,
    n_points,
    rng,
    atmosphere: ExponentialAtmosphere,
    obs_level,
    photons_per_tev=2.0e8,
    lateral_scale=0.1,
    profile_shift=0.0,
    lateral_shape="nkg",
):
    """Draw ``n_points`` emission points, shared among the sub-showers in proportion to energy.

    Each sub-shower emits along its Greisen profile, moved ``profile_shift`` radiation lengths
    earlier (its first ones left out; the age stays that of the profile's own depth); points
    that would lie below the observation level are dropped (their light never forms).
    """
    energy = subshowers.energy
    usable = energy > 2.0 * CRITICAL_ENERGY
    total = energy[usable].sum()
    if total <= 0 or n_points <= 0:
        return _empty()
    probability = np.where(usable, energy, 0.0) / total
    counts = rng.multinomial(n_points, probability)
    idx = np.repeat(np.arange(len(energy)), counts)

    beta = np.log(energy[idx] / CRITICAL_ENERGY)
    t = sample_greisen_depth(beta, rng, profile_shift)
    direction = subshowers.direction[idx]
    start = subshowers.start[idx]
    cos_z = np.maximum(-direction[:, 2], 1e-3)
    slant = subshowers.start_depth[idx] + (t - profile_shift) * RADIATION_LENGTH
    vertical = atmosphere.vertical_depth(start[:, 2] + obs_level) + slant * cos_z
    above_ground = vertical < atmosphere.vertical_depth(obs_level)
    vertical, direction, start, cos_z, t, beta = (
        a[above_ground] for a in (vertical, direction, start, cos_z, t, beta)
    )
    height = atmosphere.height(vertical)
    position = start + direction * ((start[:, 2] + obs_level - height) / cos_z)[:, None]
    age = shower_age(t, beta)
    photons = photons_per_tev * total / n_points * threshold_factor(atmosphere, height, age)
    e1, e2 = perpendicular_basis(direction)
    points = EmissionPoints(
        position=position,
        axis_position=position,
        direction=direction,
        height=height,
        age=age,
        yield_=photons,
        e1=e1,
        e2=e2,
    )
    # the light-density weights see the emission spread around the axis too
    points.position = position + lateral_offsets(
        points, np.arange(len(points)), rng, atmosphere, lateral_scale, lateral_shape
    )
    return points


def lateral_offsets(points: EmissionPoints, index, rng, atmosphere, lateral_scale, shape="nkg"):
    """Offsets (n, 3) of individual photons from their emission point, perpendicular to the axis.

    ``shape`` "exponential": radial distances follow an exponential in units of the local
    Moliere radius, wider for older shower stages. "nkg": the NKG distribution of age s itself,
    x^(s-1) (1+x)^(s-4.5) in x = r / (lateral_scale r_M), a beta-prime law: a sharper cusp
    and a longer tail, both growing with age.
    """
    age = points.age[index]
    moliere = atmosphere.moliere_radius(points.height[index])
    if shape == "nkg":
        # the tail is cut at 5 units: NKG counts all electrons, most of them below the
        # Cherenkov threshold, and its variance diverges for old stages
        s = np.clip(age, 0.3, 1.5)
        b = rng.beta(s, 4.5 - 2.0 * s)
        r = lateral_scale * moliere * np.minimum(b / np.maximum(1.0 - b, 1e-9), 5.0)
    else:
        r = lateral_scale * moliere * np.clip(age, 0.3, 2.0) ** 1.5 * rng.exponential(1.0, len(index))
    phi = rng.uniform(0.0, 2 * np.pi, len(index))
    return (r * np.cos(phi))[:, None] * points.e1[index] + (r * np.sin(phi))[:, None] * points.e2[index]


def _empty():
    z3 = np.zeros((0, 3))
    z = np.zeros(0)
    return EmissionPoints(z3, z3, z3, z, z, z, z3, z3)
