"""Primary particles -> electromagnetic sub-showers (start point, direction, energy).

Gammas and electrons: see ``em_cascade``. A proton is a hadronic cascade: every interaction hands about a third of the
interacting energy to neutral pions (electromagnetic sub-showers), the rest to
charged hadrons that interact again further down, each secondary with a
transverse-momentum kick. Positions are in the ground frame (x north, y west,
z up, metres above the observation level).
"""

from dataclasses import dataclass

import numpy as np

from .longitudinal import RADIATION_LENGTH

__all__ = [
    "SubShowers", "HadronicModel", "axis_direction", "perpendicular_basis", "kick", "advance", "entry_point",
    "hadronic_cascade", "hadronic_cascades",
]

#: mean free path of a photon before pair production, g/cm2
PAIR_LENGTH = 9.0 / 7.0 * RADIATION_LENGTH


@dataclass
class SubShowers:
    """Electromagnetic sub-showers; ``direction`` is the downward unit vector of propagation."""

    start: np.ndarray  # (n, 3) m
    direction: np.ndarray  # (n, 3)
    energy: np.ndarray  # (n,) TeV
    start_depth: np.ndarray  # (n,) slant g/cm2 travelled after ``start`` before the shower starts

    def __len__(self):
        return len(self.energy)


@dataclass(frozen=True)
class HadronicModel:
    """Parameters of the simplified hadronic cascade."""

    proton_interaction_length: float = 85.0  # g/cm2
    pion_interaction_length: float = 120.0  # g/cm2
    inelasticity_min: float = 0.3
    inelasticity_max: float = 0.8
    em_fraction_alpha: float = 2.0  # Beta(a, b) share of the interacting energy going to pi0
    em_fraction_beta: float = 3.5
    mean_pt: float = 0.35e-3  # TeV
    min_energy: float = 5e-3  # TeV, hadrons below this stop (decay to muons and neutrinos)
    max_generations: int = 14


def axis_direction(alt, az):
    """Downward unit propagation vector(s) of a shower arriving from (alt, az) in rad."""
    alt = np.asarray(alt, dtype=float)
    az = np.asarray(az, dtype=float)
    up = np.stack([np.cos(alt) * np.cos(az), -np.cos(alt) * np.sin(az), np.sin(alt)], axis=-1)
    return -up


def perpendicular_basis(direction):
    """Two unit vectors orthogonal to each row of ``direction``."""
    dx, dy, dz = direction[:, 0], direction[:, 1], direction[:, 2]
    # e1 = direction x helper, helper = z (or x for near-vertical axes); by component, as
    # this runs for every emission point
    vertical = np.abs(dz) >= 0.9
    zero = np.zeros_like(dx)
    a, b, c = np.where(vertical, zero, dy), np.where(vertical, dz, -dx), np.where(vertical, -dy, zero)
    norm = np.sqrt(a * a + b * b + c * c)
    a, b, c = a / norm, b / norm, c / norm
    e1 = np.stack([a, b, c], 1)
    e2 = np.stack([dy * c - dz * b, dz * a - dx * c, dx * b - dy * a], 1)
    return e1, e2


def kick(direction, theta, rng):
    """Rotate each direction by polar angle ``theta`` around a random azimuth."""
    e1, e2 = perpendicular_basis(direction)
    phi = rng.uniform(0, 2 * np.pi, len(theta))
    out = (
        np.cos(theta)[:, None] * direction
        + np.sin(theta)[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)
    )
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def advance(position, direction, slant_depth, atmosphere, obs_level):
    """Move by ``slant_depth`` g/cm2 along ``direction``; returns (position, reached_ground)."""
    cos_z = np.maximum(-direction[:, 2], 1e-3)
    depth_here = atmosphere.vertical_depth(position[:, 2] + obs_level)
    depth_there = depth_here + slant_depth * cos_z
    ground = depth_there >= atmosphere.vertical_depth(obs_level)
    height = atmosphere.height(np.minimum(depth_there, atmosphere.vertical_depth(obs_level)))
    dz = position[:, 2] - (height - obs_level)
    return position + direction * (dz / cos_z)[:, None], ground


def entry_point(core, direction, atmosphere, obs_level, top_height=100e3):
    """Point of the axis at the top of the atmosphere."""
    cos_z = -direction[2]
    z = top_height - obs_level
    return np.array([core[0], core[1], 0.0]) - direction * (z / cos_z)


def hadronic_cascade(energy, core, direction, rng, atmosphere, obs_level, model=HadronicModel()):
    """Electromagnetic sub-showers of a proton-initiated cascade."""
    return hadronic_cascades(
        [energy],
        np.asarray(core, dtype=float)[None, :],
        np.asarray(direction, dtype=float)[None, :],
        rng,
        atmosphere,
        obs_level,
        model,
    )[0]


def hadronic_cascades(energy, core, direction, rng, atmosphere, obs_level, model=HadronicModel()):
    """`hadronic_cascade` of several protons (``energy`` (n,) TeV, ``core`` (n, 2) m,
    ``direction`` (n, 3)), followed together: every generation of all of them in one pass
    of array operations. For one proton the draws are those of `hadronic_cascade`.

    Returns a list of `SubShowers`, one per proton, each in the order of its generations.
    """
    energy = np.asarray(energy, dtype=float).reshape(-1)
    direction = np.asarray(direction, dtype=float).reshape(-1, 3)
    core = np.asarray(core, dtype=float).reshape(-1, 2)
    n_showers = len(energy)
    cos_z = -direction[:, 2]
    top = 100e3 - obs_level
    position = np.column_stack([core, np.zeros(n_showers)]) - direction * (top / cos_z)[:, None]
    hadron_energy = energy.copy()
    is_leading = np.ones(n_showers, dtype=bool)
    owner = np.arange(n_showers)

    starts, dirs, energies, owners = [], [], [], []
    for _ in range(model.max_generations):
        if len(hadron_energy) == 0:
            break
        lengths = np.where(is_leading, model.proton_interaction_length, model.pion_interaction_length)
        position, ground = advance(position, direction, rng.exponential(lengths), atmosphere, obs_level)
        keep = ~ground
        position, direction, hadron_energy = position[keep], direction[keep], hadron_energy[keep]
        is_leading, owner = is_leading[keep], owner[keep]
        n = len(hadron_energy)
        if n == 0:
            break

        inelasticity = rng.uniform(model.inelasticity_min, model.inelasticity_max, n)
        interacting = inelasticity * hadron_energy
        em = interacting * rng.beta(model.em_fraction_alpha, model.em_fraction_beta, n)
        charged = interacting - em

        # neutral pions: two photon sub-showers per interaction; charged pions: two
        # bundles; plus the leading particle. All get their transverse-momentum kick at once.
        share_em = rng.uniform(0.0, 1.0, n)
        share_ch = rng.uniform(0.2, 0.8, n)
        out_energy = np.concatenate(
            [
                em * share_em,
                em * (1 - share_em),
                (1 - inelasticity) * hadron_energy,
                charged * share_ch,
                charged * (1 - share_ch),
            ]
        )
        out_dir = np.tile(direction, (5, 1))
        out_pos = np.tile(position, (5, 1))
        out_owner = np.tile(owner, 5)
        theta = rng.gamma(2.0, model.mean_pt / 2.0, 5 * n) / np.maximum(out_energy, 1e-6)
        out_dir = kick(out_dir, np.minimum(theta, 0.5), rng)
        starts.append(out_pos[: 2 * n])
        dirs.append(out_dir[: 2 * n])
        energies.append(out_energy[: 2 * n])
        owners.append(out_owner[: 2 * n])

        new_leading = np.concatenate([is_leading, np.zeros(2 * n, bool)])
        new_energy = out_energy[2 * n :]
        alive = new_energy > model.min_energy
        position, direction, hadron_energy = out_pos[2 * n :][alive], out_dir[2 * n :][alive], new_energy[alive]
        is_leading, owner = new_leading[alive], out_owner[2 * n :][alive]

    if not energies:
        empty = np.zeros((0, 3))
        return [SubShowers(empty, empty, np.zeros(0), np.zeros(0)) for _ in range(n_showers)]
    owner_all = np.concatenate(owners)
    # by shower, each in the order of its generations
    order = np.argsort(owner_all, kind="stable")
    start_all = np.concatenate(starts)[order]
    dir_all = np.concatenate(dirs)[order]
    energy_all = np.concatenate(energies)[order]
    bounds = np.searchsorted(owner_all[order], np.arange(n_showers + 1))
    # Greisen's profile of a photon already holds its mean pair-production path: the
    # sub-showers start where the pions decay
    return [
        SubShowers(
            start=start_all[a:b],
            direction=dir_all[a:b],
            energy=energy_all[a:b],
            start_depth=np.zeros(b - a),
        )
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
