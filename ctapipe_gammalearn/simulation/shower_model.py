"""The air-shower model: primary -> emission points -> photo-electrons (direction, time) per telescope."""

from dataclasses import dataclass

import numpy as np
from ctapipe.core import Component
from ctapipe.core.traits import Float, Int

from .atmosphere import ExponentialAtmosphere
from .cascade import PAIR_LENGTH, HadronicModel, axis_direction, em_primary, hadronic_cascade
from .cherenkov import SPEED_OF_LIGHT, AngularModel, ground_to_fov, photons_at_telescope
from .emission import EmissionPoints, lateral_offsets, sample_emission_points, threshold_factor
from .longitudinal import CRITICAL_ENERGY, RADIATION_LENGTH, sample_greisen_depth, shower_age

__all__ = ["AirShowerModel", "ShowerLight", "PRIMARY_IDS", "quick_expected_photons"]

#: CORSIKA / sim_telarray particle ids
PRIMARY_IDS = {"gamma": 0, "electron": 1, "proton": 101}


@dataclass
class ShowerLight:
    """Emission points of one shower and its truth."""

    points: EmissionPoints
    axis: np.ndarray  # downward unit vector of the primary
    core: np.ndarray  # (3,) m
    x_max: float  # slant g/cm2
    h_first_int: float  # m a.s.l.
    obs_level: float  # m a.s.l.


class AirShowerModel(Component):
    """Physics of the shower and its Cherenkov light (see docs/simulation.md)."""

    scale_height = Float(8400.0, help="Scale height of the exponential atmosphere, m").tag(config=True)
    photons_per_tev = Float(
        2.0e8, help="Cherenkov photons (300-600 nm) per TeV of electromagnetic energy, before threshold losses"
    ).tag(config=True)
    lateral_scale = Float(
        0.11, help="Radial spread of the light-emitting electrons in units of the local Moliere radius"
    ).tag(config=True)
    core_sigma = Float(0.45, help="Angular spread of the emitting electrons (core), deg").tag(config=True)
    tail_sigma = Float(3.0, help="Angular spread of the emitting electrons (tail), deg").tag(config=True)
    tail_fraction = Float(0.35, help="Share of the angular tail").tag(config=True)
    xmax_sigma = Float(
        15.0, help="Extra Gaussian fluctuation of the electromagnetic shower start, g/cm2"
    ).tag(config=True)
    points_per_sqrt_tev = Int(
        2500, help="Emission points per event are this times sqrt(E/TeV), clipped to [400, 20000]"
    ).tag(config=True)
    muon_probability = Float(
        0.02, help="Chance per proton shower and telescope of a muon ring at 1 TeV (scales as E^0.8)"
    ).tag(config=True)
    muon_pe_per_metre_rad = Float(
        25.0, help="Muon-ring p.e. per metre of mirror chord and radian (optical efficiency included)"
    ).tag(config=True)

    def __init__(self, config=None, parent=None, **kwargs):
        super().__init__(config=config, parent=parent, **kwargs)
        self.atmosphere = ExponentialAtmosphere(scale_height=self.scale_height)
        self.angular = AngularModel(
            core_sigma=np.deg2rad(self.core_sigma),
            tail_sigma=np.deg2rad(self.tail_sigma),
            tail_fraction=self.tail_fraction,
        )
        self.hadronic = HadronicModel()

    def shower(self, rng, particle, energy, alt, az, core_x, core_y, obs_level) -> ShowerLight:
        """Emission points of one shower of ``energy`` TeV from (alt, az) rad, core in m."""
        axis = axis_direction(alt, az)
        core = np.array([core_x, core_y])
        if particle == "proton":
            subs = hadronic_cascade(energy, core, axis, rng, self.atmosphere, obs_level, self.hadronic)
            n_points = 2 * self.points_per_sqrt_tev
        else:
            first = PAIR_LENGTH if particle == "gamma" else 0.5 * RADIATION_LENGTH
            subs = em_primary(energy, core, axis, rng, self.atmosphere, obs_level, first)
            subs.start_depth = np.maximum(subs.start_depth + self.xmax_sigma * rng.standard_normal(1), 0.0)
            n_points = self.points_per_sqrt_tev
        n_points = int(np.clip(n_points * np.sqrt(energy), 400, 20000))
        points = sample_emission_points(
            subs, n_points, rng, self.atmosphere, obs_level, self.photons_per_tev, self.lateral_scale
        )
        cos_z = -axis[2]
        x_max, h_first = np.nan, np.nan
        if len(points):
            slant = self.atmosphere.vertical_depth(points.height) / cos_z
            hist, edges = np.histogram(slant, bins=np.arange(0.0, slant.max() + 20.0, 20.0))
            x_max = float(edges[np.argmax(hist)] + 10.0)
        if len(subs):
            first_depth = subs.start_depth.min() if particle != "proton" else None
            if first_depth is not None:
                h_first = float(self.atmosphere.height(max(first_depth, 1e-3) * cos_z))
            else:
                h_first = float(np.max(subs.start[:, 2]) + obs_level)
        return ShowerLight(
            points=points, axis=axis, core=np.array([core_x, core_y, 0.0]), x_max=x_max, h_first_int=h_first, obs_level=obs_level
        )

    def expected_photons(self, light: ShowerLight, telescope_position, mirror_area, obs_level):
        """Expected photons on the mirror from each emission point."""
        if len(light.points) == 0:
            return np.zeros(0)
        return photons_at_telescope(
            light.points, telescope_position, mirror_area, self.atmosphere, obs_level, self.angular
        )

    def photoelectrons(self, rng, light: ShowerLight, per_point_pe, n_pe, telescope_position, pointing):
        """Directions (fov_lon, fov_lat, deg) and arrival times (ns) of ``n_pe`` p.e.

        Emission points are drawn with probability ``per_point_pe``; each p.e. gets its own
        lateral offset from the shower axis, so images stay smooth when p.e. outnumber points.
        """
        counts = rng.multinomial(n_pe, per_point_pe / per_point_pe.sum())
        index = np.repeat(np.arange(len(counts)), counts)
        points = light.points
        position = points.axis_position[index] + lateral_offsets(
            points, index, rng, self.atmosphere, self.lateral_scale
        )
        to_emission = position - np.asarray(telescope_position)[None, :]
        distance = np.linalg.norm(to_emission, axis=1)
        fov_lon, fov_lat = ground_to_fov(to_emission, *pointing)
        # the particle front moves down the primary axis at c; light follows at c/n
        along_axis = (position - light.core[None, :]) @ (-light.axis)
        refractivity = self.atmosphere.refractivity(0.5 * (points.height[index] + light.obs_level))
        time = (-along_axis + distance * (1.0 + refractivity)) / SPEED_OF_LIGHT
        return fov_lon, fov_lat, time

    def muon_probability_at(self, energy):
        return min(1.0, self.muon_probability * energy**0.8)


def quick_expected_photons(
    model: AirShowerModel, rng, particle, energy, alt, az, core_x, core_y, telescope_positions, mirror_areas, obs_level, n_points=48
):
    """Rough expected photons on each mirror for a batch of showers, shape (n_showers, n_tel).

    A few emission points on the primary axis per shower (a proton counted as an
    electromagnetic shower of 60% of its energy): cheap enough to screen out the
    many thrown showers too faint to trigger before simulating them in full.
    """
    n = len(energy)
    em_energy = energy * (0.6 if particle == "proton" else 1.0)
    axis = axis_direction(alt, az)  # (n, 3)
    first = rng.exponential(PAIR_LENGTH, n)
    idx = np.repeat(np.arange(n), n_points)
    beta = np.log(np.maximum(em_energy[idx] / CRITICAL_ENERGY, 2.0))
    slant = first[idx] + sample_greisen_depth(beta, rng) * RADIATION_LENGTH
    cos_z = -axis[idx, 2]
    vertical = slant * cos_z
    ground = model.atmosphere.vertical_depth(obs_level)
    valid = vertical < ground
    height = model.atmosphere.height(np.minimum(vertical, ground))
    along = (height - obs_level) / cos_z
    core = np.stack([core_x, core_y, np.zeros(n)], axis=1)
    position = core[idx] - axis[idx] * along[:, None]
    age = shower_age((slant - first[idx]) / RADIATION_LENGTH, beta)
    yield_ = (
        model.photons_per_tev * em_energy[idx] / n_points * threshold_factor(model.atmosphere, height, age) * valid
    )
    points = EmissionPoints(position, position, axis[idx], height, age, yield_, None, None)
    out = np.empty((n, len(telescope_positions)))
    for j, (pos, area) in enumerate(zip(telescope_positions, mirror_areas)):
        photons = photons_at_telescope(points, pos, area, model.atmosphere, obs_level, model.angular)
        out[:, j] = np.bincount(idx, weights=photons, minlength=n)
    return out
