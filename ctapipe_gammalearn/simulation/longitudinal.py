"""Greisen longitudinal profile of electromagnetic showers and depth sampling from it."""

from functools import lru_cache

import numpy as np

__all__ = [
    "RADIATION_LENGTH",
    "CRITICAL_ENERGY",
    "greisen_size",
    "shower_age",
    "sample_greisen_depth",
]

#: radiation length of air, g/cm2
RADIATION_LENGTH = 36.7
#: critical energy of air, TeV
CRITICAL_ENERGY = 86e-6

_BETA_GRID = np.linspace(1.0, 16.0, 61)
_U_GRID = np.linspace(0.0, 1.0, 257)


def greisen_size(t, beta):
    """Number of charged particles after t radiation lengths, beta = ln(E / E_c)."""
    t = np.maximum(np.asarray(t, dtype=float), 1e-9)
    s = shower_age(t, beta)
    return 0.31 / np.sqrt(beta) * np.exp(t * (1.0 - 1.5 * np.log(s)))


def shower_age(t, beta):
    """Greisen's age parameter: 1 at the maximum (t = beta), 2 near extinction."""
    return 3.0 * t / (t + 2.0 * beta)


@lru_cache(maxsize=1)
def _inverse_cdf_table():
    """Quantiles of t (track-length weighted) on a (beta, u) grid, computed once."""
    table = np.empty((len(_BETA_GRID), len(_U_GRID)))
    for i, beta in enumerate(_BETA_GRID):
        t = np.linspace(0.0, 4.0 * beta + 25.0, 4000)
        n = greisen_size(t, beta)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (n[1:] + n[:-1]) * np.diff(t))])
        cdf /= cdf[-1]
        table[i] = np.interp(_U_GRID, cdf, t)
    return table


def sample_greisen_depth(beta, rng, skip=0.0):
    """Draw one depth (in radiation lengths after the start) per entry of ``beta``.

    Depths follow the Greisen track length, i.e. where the Cherenkov light is
    emitted; bilinear interpolation in a precomputed inverse-CDF table keeps it vectorised.
    ``skip``: the profile's first ``skip`` radiation lengths are left out (depths >= skip),
    one uniform draw per depth whatever ``skip``.
    """
    beta = np.clip(np.asarray(beta, dtype=float), _BETA_GRID[0], _BETA_GRID[-1])
    table = _inverse_cdf_table()
    fb = (beta - _BETA_GRID[0]) / (_BETA_GRID[1] - _BETA_GRID[0])
    ib = np.minimum(fb.astype(int), len(_BETA_GRID) - 2)
    wb = fb - ib
    u = rng.random(beta.shape)
    if skip > 0:
        below = _cdf_at(float(skip))
        first = below[ib] * (1 - wb) + below[ib + 1] * wb
        u = first + (1.0 - first) * u
    fu = u * (len(_U_GRID) - 1)
    iu = np.minimum(fu.astype(int), len(_U_GRID) - 2)
    wu = fu - iu
    lo = table[ib, iu] * (1 - wu) + table[ib, iu + 1] * wu
    hi = table[ib + 1, iu] * (1 - wu) + table[ib + 1, iu + 1] * wu
    return np.maximum(lo * (1 - wb) + hi * wb, skip)


@lru_cache(maxsize=8)
def _cdf_at(t):
    """Share of the track length before depth ``t`` (radiation lengths), per beta of the grid."""
    table = _inverse_cdf_table()
    return np.array([np.interp(t, row, _U_GRID) for row in table])
