"""Cherenkov emission points along the sub-showers (photon bunches before the telescopes)."""

from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from scipy.special import betaincinv

from .atmosphere import ExponentialAtmosphere
from .cascade import perpendicular_basis
from .longitudinal import CRITICAL_ENERGY, RADIATION_LENGTH, sample_greisen_depth, shower_age

__all__ = [
    "EmissionPoints", "sample_emission_points_batch", "select_points", "select_where",
    "lateral_offsets", "sample_nkg_radius", "threshold_factor",
]


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


def sample_emission_points_batch(
    subshowers, n_points, rng, atmosphere: ExponentialAtmosphere, obs_level, photons_per_tev=2.0e8,
    lateral_scale=0.1, profile_shift=0.0, lateral_shape="nkg",
):
    """Emission points of several showers (a list of `SubShowers` and the points of each), in
    one pass of array operations for a whole batch, where the numpy calls of one shower at a
    time cost more than their arithmetic.

    Each shower's points are shared among its sub-showers in proportion to energy. Each
    sub-shower emits along its Greisen profile, moved ``profile_shift`` radiation lengths
    earlier (its first ones left out; the age stays that of the profile's own depth); points
    that would lie below the observation level are dropped (their light never forms).

    Returns (EmissionPoints, bounds): shower k's points are ``bounds[k]:bounds[k + 1]``.
    """
    n_showers = len(subshowers)
    sizes = np.array([len(s) for s in subshowers], dtype=int)
    owner = np.repeat(np.arange(n_showers), sizes)
    energy = np.concatenate([np.zeros(0), *(s.energy for s in subshowers)])
    weight = np.where(energy > 2.0 * CRITICAL_ENERGY, energy, 0.0)
    total = np.bincount(owner, weights=weight, minlength=n_showers)
    n_points = np.where(total > 0, np.maximum(np.asarray(n_points, dtype=int), 0), 0)
    if n_points.sum() == 0:
        return _empty(), np.zeros(n_showers + 1, dtype=int)
    # sub-shower of each point, drawn in proportion to energy within its own shower
    point_owner = np.repeat(np.arange(n_showers), n_points)
    cumulative = np.cumsum(weight)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    base = np.concatenate([[0.0], cumulative])[first]
    u = base[point_owner] + rng.random(len(point_owner)) * total[point_owner]
    last = (first + sizes - 1)[point_owner]
    idx = np.minimum(np.searchsorted(cumulative, u, side="right"), last)

    def gather(name):
        return np.take(np.concatenate([getattr(s, name) for s in subshowers]), idx, axis=0)

    start_depth = gather("start_depth")
    direction, start = gather("direction"), gather("start")
    beta = np.log(np.take(energy, idx) / CRITICAL_ENERGY)
    t = sample_greisen_depth(beta, rng, profile_shift)
    # one basis per sub-shower, shared by its points
    all_directions = np.concatenate([s.direction for s in subshowers])
    e1, e2 = (np.take(e, idx, axis=0) for e in perpendicular_basis(all_directions))
    cos_z = np.maximum(-direction[:, 2], 1e-3)
    slant = start_depth + (t - profile_shift) * RADIATION_LENGTH
    vertical = atmosphere.vertical_depth(start[:, 2] + obs_level) + slant * cos_z
    above_ground = np.flatnonzero(vertical < atmosphere.vertical_depth(obs_level))
    vertical, direction, start, cos_z, t, beta, e1, e2, point_owner = (
        np.take(a, above_ground, axis=0) for a in (vertical, direction, start, cos_z, t, beta, e1, e2, point_owner)
    )
    height = atmosphere.height(vertical)
    position = start + direction * ((start[:, 2] + obs_level - height) / cos_z)[:, None]
    age = shower_age(t, beta)
    per_point = photons_per_tev * total / np.maximum(n_points, 1)
    photons = np.take(per_point, point_owner) * threshold_factor(atmosphere, height, age)
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
    bounds = np.concatenate([[0], np.cumsum(np.bincount(point_owner, minlength=n_showers))])
    return points, bounds


def select_points(points: EmissionPoints, start, stop) -> EmissionPoints:
    """The points ``start:stop`` (views, no copies)."""
    return EmissionPoints(*(getattr(points, f.name)[start:stop] for f in fields(EmissionPoints)))


def select_where(points: EmissionPoints, mask) -> EmissionPoints:
    """The points where ``mask`` is true (all of them, without copies, when it is everywhere)."""
    if mask.all():
        return points
    return EmissionPoints(*(getattr(points, f.name)[mask] for f in fields(EmissionPoints)))


def lateral_offsets(points: EmissionPoints, index, rng, atmosphere, lateral_scale, shape="nkg"):
    """Offsets (n, 3) of individual photons from their emission point, perpendicular to the axis.

    ``shape`` "exponential": radial distances follow an exponential in units of the local
    Moliere radius, wider for older shower stages. "nkg": the NKG distribution of age s itself,
    x^(s-1) (1+x)^(s-4.5) in x = r / (lateral_scale r_M), a beta-prime law: a sharper cusp
    and a longer tail, both growing with age.
    """
    age = np.take(points.age, index)
    moliere = atmosphere.moliere_radius(np.take(points.height, index))
    if shape == "nkg":
        # the tail is cut at 5 units: NKG counts all electrons, most of them below the
        # Cherenkov threshold, and its variance diverges for old stages
        r = lateral_scale * moliere * sample_nkg_radius(age, rng)
    else:
        r = lateral_scale * moliere * np.clip(age, 0.3, 2.0) ** 1.5 * rng.exponential(1.0, len(index))
    phi = rng.uniform(0.0, 2 * np.pi, len(index))
    e1, e2 = np.take(points.e1, index, axis=0), np.take(points.e2, index, axis=0)
    return (r * np.cos(phi))[:, None] * e1 + (r * np.sin(phi))[:, None] * e2


_AGE_GRID = np.linspace(0.3, 1.5, 49)
_QUANTILE_GRID = np.linspace(0.0, 1.0, 1025)
#: NKG radii beyond this many units are cut (see `lateral_offsets`)
NKG_CUT = 5.0


@lru_cache(maxsize=1)
def _nkg_quantile_table():
    """Quantiles of the cut NKG radius on an (age, u) grid: x = B / (1 - B), B ~ Beta(s, 4.5 - 2s)."""
    s = _AGE_GRID[:, None]
    b = betaincinv(s, 4.5 - 2.0 * s, _QUANTILE_GRID[None, :])
    return np.minimum(b / np.maximum(1.0 - b, 1e-300), NKG_CUT)


def sample_nkg_radius(age, rng):
    """Radii (units of the NKG scale) drawn from the NKG law of ``age`` (clipped to 0.3-1.5),
    cut at `NKG_CUT`: bilinear interpolation in a table of its quantiles, one uniform per draw
    (drawing from the beta law itself costs several times more)."""
    table = _nkg_quantile_table()
    fs = (np.clip(age, _AGE_GRID[0], _AGE_GRID[-1]) - _AGE_GRID[0]) / (_AGE_GRID[1] - _AGE_GRID[0])
    i_s = np.minimum(fs.astype(int), len(_AGE_GRID) - 2)
    ws = fs - i_s
    fu = rng.random(np.shape(age)) * (len(_QUANTILE_GRID) - 1)
    i_u = np.minimum(fu.astype(int), len(_QUANTILE_GRID) - 2)
    wu = fu - i_u
    flat = table.ravel()
    n_u = len(_QUANTILE_GRID)
    at = i_s * n_u + i_u
    lo = flat[at] * (1 - wu) + flat[at + 1] * wu
    hi = flat[at + n_u] * (1 - wu) + flat[at + n_u + 1] * wu
    return lo * (1 - ws) + hi * ws


def _empty():
    z3 = np.zeros((0, 3))
    z = np.zeros(0)
    return EmissionPoints(z3, z3, z3, z, z, z, z3, z3)
