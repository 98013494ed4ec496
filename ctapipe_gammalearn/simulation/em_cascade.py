"""The first generations of an electromagnetic cascade, down to sub-showers of a fraction of its energy.

A smooth Greisen profile along the primary axis gives every gamma shower of one energy the
same shape. Real showers differ from one another mostly through their first few
generations: where the pairs form, how the energy is shared, and how far the leading
electrons are scattered and bent by the geomagnetic field before their own cascades take
over. So the first generations are followed particle by particle (Heitler-like splitting
with random energy shares: photons after exponential free paths, electrons over fixed steps
that give Bethe-Heitler's energy-loss straggling); each particle that falls below the leaf
energy becomes a sub-shower with its own start, direction and Greisen profile.
"""

from dataclasses import dataclass

import numpy as np

from .cascade import PAIR_LENGTH, SubShowers, advance
from .longitudinal import RADIATION_LENGTH

__all__ = ["ElectromagneticModel", "em_cascade", "em_cascades", "free_paths", "LA_PALMA_FIELD"]

#: geomagnetic field at the ORM, La Palma, in the ground frame (north, west, up), microtesla
LA_PALMA_FIELD = (30.6, 2.4, -23.6)
#: scattering energy of the Rossi-Greisen multiple-scattering formula, per plane, TeV
SCATTERING_ENERGY = 15.0e-6
#: electron step, g/cm2: over t radiation lengths Bethe-Heitler's energy-loss straggling leaves
#: the fraction y of the energy with -ln y ~ Gamma(t / ln 2), which at t = ln 2 is y ~ U(0, 1)
ELECTRON_STEP = RADIATION_LENGTH * np.log(2.0)
#: curvature of a singly charged particle per tesla and per TeV of energy, 1/m
CURVATURE_PER_TESLA_TEV = 0.2998e-3


@dataclass(frozen=True)
class ElectromagneticModel:
    """Parameters of the explicit first generations of an electromagnetic cascade."""

    leaf_fraction: float = 1.0 / 8.0  # particles below this share of the primary energy ...
    leaf_min_energy: float = 3e-3  # ... or below this energy (TeV) become sub-showers
    field: tuple = LA_PALMA_FIELD  # microtesla, ground frame (north, west, up)
    max_generations: int = 16
    split_bremsstrahlung: bool = False  # two photons per electron step, not one


def em_cascade(
    energy, core, direction, rng, atmosphere, obs_level, primary="gamma", model=ElectromagneticModel(), start_depth=None
):
    """Sub-showers of one gamma- or electron-initiated shower, and the height of its first
    interaction (m above the observation level). ``start_depth``: the primary's first free
    path (slant g/cm2); drawn here if not given."""
    depth = None if start_depth is None else np.array([start_depth], dtype=float)
    return em_cascades(
        np.array([energy], dtype=float), np.asarray(core, dtype=float)[None, :2], np.asarray(direction)[None, :],
        rng, atmosphere, obs_level, primary, model, depth,
    )[0]


def em_cascades(
    energy, core, direction, rng, atmosphere, obs_level, primary="gamma", model=ElectromagneticModel(), start_depth=None
):
    """`em_cascade` for a batch of showers at once (one vectorised loop over generations).

    ``energy`` (n,) TeV, ``core`` (n, 2) m, ``direction`` (n, 3); returns n (SubShowers,
    first-interaction height) pairs."""
    n_showers = len(energy)
    direction = np.asarray(direction, dtype=float)
    cos_z = np.maximum(-direction[:, 2], 1e-3)
    position = np.column_stack([core[:, 0], core[:, 1], np.zeros(n_showers)]) + direction * (
        -(100e3 - obs_level) / cos_z
    )[:, None]
    energies = np.asarray(energy, dtype=float).copy()
    owner = np.arange(n_showers)
    photon = np.full(n_showers, primary == "gamma")
    charge = np.full(n_showers, 0.0 if primary == "gamma" else -1.0)
    field = np.asarray(model.field, dtype=float) * 1e-6
    leaf_energy = np.maximum(model.leaf_fraction * energies, model.leaf_min_energy)
    if start_depth is None:
        start_depth = free_paths(photon, rng)
    first_height = np.zeros(n_showers)
    leaves = []
    for generation in range(model.max_generations):
        splits = energies > leaf_energy[owner]
        if generation == model.max_generations - 1:
            splits[:] = False
        leaves.append((owner[~splits], position[~splits], direction[~splits], energies[~splits]))
        position, direction, energies, photon, charge, owner = (
            a[splits] for a in (position, direction, energies, photon, charge, owner)
        )
        if len(energies) == 0:
            break
        if generation == 0:
            path = start_depth[owner]
        else:
            path = free_paths(photon, rng)
        moved, ground = advance(position, direction, path, atmosphere, obs_level)
        step = np.linalg.norm(moved - position, axis=1)
        direction, moved = _deflect(direction, moved, step, path, energies, charge, field, rng)
        if generation == 0:
            first_height[owner] = np.where(ground, 0.0, moved[:, 2])
        keep = ~ground
        position, direction, energies, photon, charge, owner = (
            a[keep] for a in (moved, direction, energies, photon, charge, owner)
        )
        n = len(energies)
        if n == 0:
            break
        # a photon makes a pair, an electron radiates a photon; shares uniform in (0, 1)
        share = rng.uniform(0.0, 1.0, n)
        energies = np.concatenate([energies * share, energies * (1.0 - share)])
        position = np.concatenate([position, position])
        direction = np.concatenate([direction, direction])
        owner = np.concatenate([owner, owner])
        was_photon = photon
        photon = np.concatenate([np.zeros(n, bool), ~was_photon])
        charge = np.concatenate([np.where(was_photon, 1.0, charge), np.where(was_photon, -1.0, 0.0)])
        if model.split_bremsstrahlung:
            # bremsstrahlung's 1/k spectrum: the energy an electron loses goes to two photons,
            # whose energy-weighted mean log share (-1) is that of the spectrum (one photon: -0.5)
            k = np.flatnonzero(photon)
            share = rng.uniform(0.0, 1.0, len(k))
            extra = energies[k] * (1.0 - share)
            energies[k] *= share
            energies = np.concatenate([energies, extra])
            position = np.concatenate([position, position[k]])
            direction = np.concatenate([direction, direction[k]])
            owner = np.concatenate([owner, owner[k]])
            photon = np.concatenate([photon, np.ones(len(k), bool)])
            charge = np.concatenate([charge, np.zeros(len(k))])

    never_split = leaves[0][0]
    owner, start, dirs, leaf_e = (np.concatenate(x) for x in zip(*leaves))
    # sub-showers start where they were made: Greisen's profile of a photon already holds its
    # mean pair-production path (maximum at ln(E/E_c) radiation lengths from the photon's
    # start), so no extra free path is drawn; a primary that never split starts after its
    # first free path
    depth = np.zeros(len(leaf_e))
    depth[: len(never_split)] = start_depth[never_split]
    first_height[never_split] = atmosphere.height(
        np.maximum(start_depth[never_split], 1e-3) * cos_z[never_split]
    ) - obs_level
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n_showers + 1))
    out = []
    for i in range(n_showers):
        sel = order[bounds[i] : bounds[i + 1]]
        out.append((SubShowers(start[sel], dirs[sel], leaf_e[sel], depth[sel]), float(first_height[i])))
    return out


def free_paths(photon, rng):
    """Slant depth (g/cm2) to each particle's next split: a photon converts after an
    exponential free path of 9/7 X0; an electron radiates over a fixed X0 ln 2, after which
    Bethe-Heitler's energy-loss straggling leaves it a uniform share of its energy (an
    exponential path here would double the spread of the energy it keeps)."""
    return np.where(photon, rng.exponential(PAIR_LENGTH, len(photon)), ELECTRON_STEP)


def _deflect(direction, position, step, path, energy, charge, field, rng):
    """Multiple scattering and geomagnetic bending of charged particles over one step.

    Small angles: the scattering is a Gaussian kick perpendicular to the direction, of
    ``SCATTERING_ENERGY / E * sqrt(t)`` per plane; the bending is q (d x B) / p times the step.
    """
    charged = charge != 0
    if not np.any(charged):
        return direction, position
    d, e, q, length = direction[charged], energy[charged], charge[charged], step[charged]
    sigma = SCATTERING_ENERGY / e * np.sqrt(path[charged] / RADIATION_LENGTH)
    kick = rng.standard_normal((len(e), 3)) * sigma[:, None]
    kick -= np.sum(kick * d, axis=1, keepdims=True) * d
    bx, by, bz = field
    cross = np.stack([d[:, 1] * bz - d[:, 2] * by, d[:, 2] * bx - d[:, 0] * bz, d[:, 0] * by - d[:, 1] * bx], axis=1)
    new = d + kick + (CURVATURE_PER_TESLA_TEV * q / e * length)[:, None] * cross
    new /= np.sqrt(np.sum(new * new, axis=1, keepdims=True))
    direction = direction.copy()
    position = position.copy()
    # the mean lateral shift over the step is half the change of direction times the step
    position[charged] += 0.5 * length[:, None] * (new - d)
    direction[charged] = new
    return direction, position
