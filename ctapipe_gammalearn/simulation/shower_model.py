"""The air-shower model: primary -> emission points -> photo-electrons (direction, time) per telescope."""

from dataclasses import dataclass

import numpy as np
from ctapipe.core import Component
from ctapipe.core.traits import Bool, CaselessStrEnum, Float, Int, List

from .atmosphere import ExponentialAtmosphere
from .cascade import PAIR_LENGTH, HadronicModel, axis_direction, entry_point, hadronic_cascades
from .cherenkov import SPEED_OF_LIGHT, AngularModel, fov_basis, ground_to_fov, photons_at_telescope
from .em_cascade import LA_PALMA_FIELD, ElectromagneticModel, em_cascades
from .emission import EmissionPoints, lateral_offsets, sample_emission_points_batch, select_points, threshold_factor
from .longitudinal import CRITICAL_ENERGY, RADIATION_LENGTH, sample_greisen_depth, shower_age
from .optics import with_coma

__all__ = ["AirShowerModel", "ShowerLight", "ShowerBatch", "PRIMARY_IDS", "quick_expected_photons"]

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


@dataclass
class ShowerBatch:
    """Several showers; the emission points of shower k are ``points[bounds[k]:bounds[k + 1]]``,
    the same points as ``lights[k].points``."""

    lights: list
    points: EmissionPoints
    bounds: np.ndarray


class AirShowerModel(Component):
    """Physics of the shower and its Cherenkov light (see docs/simulation.md)."""

    scale_height = Float(8400.0, help="Scale height of the exponential atmosphere, m").tag(config=True)
    photons_per_tev = Float(
        2.0e8, help="Cherenkov photons (300-600 nm) per TeV of electromagnetic energy, before threshold losses"
    ).tag(config=True)
    lateral_scale = Float(
        0.1, help="Radial spread of the light-emitting electrons in units of the local Moliere radius"
    ).tag(config=True)
    lateral_shape = CaselessStrEnum(
        ["exponential", "nkg"], default_value="nkg",
        help="Radial law of the light-emitting electrons around the axis: an exponential of lateral_scale"
        " Moliere radii widening with age, or the NKG distribution of the local age in units of lateral_scale"
        " Moliere radii",
    ).tag(config=True)
    core_sigma = Float(0.45, help="Angular spread of the emitting electrons (core), deg").tag(config=True)
    tail_sigma = Float(3.0, help="Angular spread of the emitting electrons (tail), deg").tag(config=True)
    tail_fraction = Float(0.7, help="Share of the angular tail").tag(config=True)
    tail_shape = CaselessStrEnum(
        ["gaussian", "exponential"], default_value="exponential",
        help="Shape of the angular tail: a Gaussian of tail_sigma, or Hillas' exponential angular distribution"
        " of the photons, exp(-angle / theta_0) / (angle + Cherenkov angle) with theta_0 = 0.83 (E_thr/MeV)^-0.67"
        " rad from the local Cherenkov threshold (tail_sigma unused)",
    ).tag(config=True)
    profile_shift = Float(
        0.0,
        help="Greisen's profile of every sub-shower is moved this many radiation lengths earlier (its first"
        " ones left out): a lever on the depth of the shower maximum (see docs/simulation.md)",
    ).tag(config=True)
    xmax_sigma = Float(
        15.0, help="Extra Gaussian fluctuation of the electromagnetic shower start, g/cm2"
    ).tag(config=True)
    leaf_fraction = Float(
        1.0 / 8.0,
        help="Gamma and electron showers are followed particle by particle until each particle has less than"
        " this share of the primary energy (or leaf_min_energy); 1 gives one smooth shower",
    ).tag(config=True)
    split_bremsstrahlung = Bool(
        False,
        help="In the explicit generations the energy an electron loses over a step goes to two photons (shares"
        " uniform, like bremsstrahlung's 1/k spectrum), not one: showers develop earlier (see docs/simulation.md)",
    ).tag(config=True)
    leaf_min_energy = Float(3e-3, help="Energy below which particles become sub-showers, TeV").tag(config=True)
    geomagnetic_field = List(
        Float(), default_value=list(LA_PALMA_FIELD), minlen=3, maxlen=3,
        help="Geomagnetic field in the ground frame (north, west, up), microtesla; default: La Palma",
    ).tag(config=True)
    points_per_sqrt_tev = Int(
        2500, help="Emission points per event are this times sqrt(E/TeV), clipped to [400, 20000]"
    ).tag(config=True)
    muons_per_tev = Float(
        10.0, help="Muons above the Cherenkov threshold in a 1 TeV proton shower (scales as E^0.85)"
    ).tag(config=True)
    muon_lateral_scale = Float(
        250.0, help="Muon density on the ground falls as exp(-r / this) from the core, m"
    ).tag(config=True)
    muon_impact_max = Float(
        5.0, help="Muons passing up to this many mirror radii from a telescope leave a ring or arc"
    ).tag(config=True)
    muon_pe_per_metre_rad = Float(
        25.0, help="Muon-ring p.e. per metre of mirror chord and radian (optical efficiency included)"
    ).tag(config=True)
    muon_production_height = Float(
        12000.0, help="Mean height (m a.s.l.) on the shower axis where the muons reaching a telescope are born"
    ).tag(config=True)
    muon_production_spread = Float(3000.0, help="Gaussian spread of that height, m").tag(config=True)
    muon_angular_spread = Float(
        0.5, help="Gaussian spread of a muon's direction around the line from its birth point, deg (scattering)"
    ).tag(config=True)

    def __init__(self, config=None, parent=None, **kwargs):
        super().__init__(config=config, parent=parent, **kwargs)
        self.atmosphere = ExponentialAtmosphere(scale_height=self.scale_height)
        self.angular = AngularModel(
            core_sigma=np.deg2rad(self.core_sigma),
            tail_sigma=np.deg2rad(self.tail_sigma),
            tail_fraction=self.tail_fraction,
            tail_shape=self.tail_shape,
        )
        self.hadronic = HadronicModel()
        self.electromagnetic = ElectromagneticModel(
            leaf_fraction=self.leaf_fraction, leaf_min_energy=self.leaf_min_energy, field=tuple(self.geomagnetic_field),
            split_bremsstrahlung=self.split_bremsstrahlung,
        )

    def em_cascades(self, rng, particle, energy, alt, az, core_x, core_y, obs_level):
        """Sub-showers and first-interaction heights (m a.s.l.) of a batch of gamma or electron
        showers (arrays), computed together: much faster than one by one."""
        first = PAIR_LENGTH if particle == "gamma" else 0.5 * RADIATION_LENGTH
        n = len(energy)
        first_path = np.maximum(rng.exponential(first, n) + self.xmax_sigma * rng.standard_normal(n), 0.0)
        cascades = em_cascades(
            np.asarray(energy, dtype=float), np.column_stack([core_x, core_y]), axis_direction(alt, az), rng,
            self.atmosphere, obs_level, particle, self.electromagnetic, first_path,
        )
        return [(subs, h_first + obs_level) for subs, h_first in cascades]

    def hadronic_cascades(self, rng, energy, alt, az, core_x, core_y, obs_level):
        """Sub-showers and first-interaction heights (m a.s.l.) of a batch of proton showers,
        all followed together (`cascade.hadronic_cascades`)."""
        subs = hadronic_cascades(
            np.asarray(energy, dtype=float), np.column_stack([core_x, core_y]), axis_direction(alt, az), rng,
            self.atmosphere, obs_level, self.hadronic,
        )
        return [(sub, float(np.max(sub.start[:, 2]) + obs_level) if len(sub) else np.nan) for sub in subs]

    def cascades(self, rng, particle, energy, alt, az, core_x, core_y, obs_level):
        """`em_cascades` or `hadronic_cascades`, by particle."""
        if particle == "proton":
            return self.hadronic_cascades(rng, energy, alt, az, core_x, core_y, obs_level)
        return self.em_cascades(rng, particle, energy, alt, az, core_x, core_y, obs_level)

    def n_points(self, particle, energy):
        """Emission points drawn for showers of ``energy`` TeV."""
        per_sqrt_tev = 2 * self.points_per_sqrt_tev if particle == "proton" else self.points_per_sqrt_tev
        return np.clip(per_sqrt_tev * np.sqrt(np.asarray(energy, dtype=float)), 400, 20000).astype(int)

    def shower(self, rng, particle, energy, alt, az, core_x, core_y, obs_level, cascade=None) -> ShowerLight:
        """Emission points of one shower of ``energy`` TeV from (alt, az) rad, core in m.

        ``cascade``: this shower's entry of `cascades` when computed for a batch already.
        """
        cascades = None if cascade is None else [cascade]
        batch = self.shower_batch(rng, particle, [energy], [alt], [az], [core_x], [core_y], obs_level, cascades)
        return batch.lights[0]

    def shower_batch(self, rng, particle, energy, alt, az, core_x, core_y, obs_level, cascades=None) -> "ShowerBatch":
        """`shower` for several showers (arrays), their emission points drawn together: each
        one's `ShowerLight`, and the points of all of them in one array as well."""
        energy = np.asarray(energy, dtype=float)
        if cascades is None:
            cascades = self.cascades(rng, particle, energy, alt, az, core_x, core_y, obs_level)
        subs = [c[0] for c in cascades]
        h_first = [c[1] for c in cascades]
        n_points = self.n_points(particle, energy)
        points, bounds = sample_emission_points_batch(
            subs, n_points, rng, self.atmosphere, obs_level, self.photons_per_tev, self.lateral_scale,
            self.profile_shift, self.lateral_shape,
        )
        x_max = _depth_of_maximum(self.atmosphere, points, bounds, axis_direction(alt, az)[..., 2])
        lights = [
            ShowerLight(
                points=select_points(points, bounds[k], bounds[k + 1]),
                axis=axis_direction(alt[k], az[k]),
                core=np.array([core_x[k], core_y[k], 0.0]),
                x_max=x_max[k],
                h_first_int=h_first[k],
                obs_level=obs_level,
            )
            for k in range(len(energy))
        ]
        return ShowerBatch(lights=lights, points=points, bounds=bounds)

    def photoelectrons(
        self, rng, light: ShowerLight, per_point_pe, n_pe, telescope_position, pointing, mirror_radius=0.0,
        focus_distance=0.0, coma=0.0, image_scale=1.0,
    ):
        """Directions (fov_lon, fov_lat, deg) and arrival times (ns) of ``n_pe`` p.e.

        Emission points are drawn with probability ``per_point_pe``; each p.e. gets its own
        lateral offset from the shower axis, so images stay smooth when p.e. outnumber points.
        Each p.e. hits the dish (radius ``mirror_radius``, m) at a random point: seen from there
        the emission point lies in a slightly different direction, so a dish focused at
        ``focus_distance`` (m; 0 = infinity) blurs light from nearer or farther points, and
        off-axis light gets the dish's coma (``coma``: K/f², 1/m², see `optics`); the
        directions are then scaled by ``image_scale`` (f_eq over the camera frame's focal length).
        """
        counts = rng.multinomial(n_pe, per_point_pe / per_point_pe.sum())
        index = np.repeat(np.arange(len(counts)), counts)
        points = light.points
        position = np.take(points.axis_position, index, axis=0) + lateral_offsets(
            points, index, rng, self.atmosphere, self.lateral_scale, self.lateral_shape
        )
        mirror = np.asarray(telescope_position, dtype=float)[None, :]
        if mirror_radius > 0:
            # the dish point in the aperture plane, along the field of view's axes
            u_lon, u_lat = fov_basis(*pointing)
            r = mirror_radius * np.sqrt(rng.random(n_pe))
            phi = rng.uniform(0.0, 2 * np.pi, n_pe)
            p_lon, p_lat = r * np.cos(phi), r * np.sin(phi)
            offset = p_lon[:, None] * u_lon + p_lat[:, None] * u_lat
            mirror = mirror + offset
        to_emission = position - mirror
        distance = np.linalg.norm(to_emission, axis=1)
        direction = to_emission / distance[:, None]
        if mirror_radius > 0 and focus_distance > 0:
            direction = direction + offset / focus_distance
        fov_lon, fov_lat = ground_to_fov(direction, *pointing)
        if mirror_radius > 0 and coma > 0:
            fov_lon, fov_lat = with_coma(fov_lon, fov_lat, p_lon, p_lat, coma)
            fov_lon, fov_lat = fov_lon * image_scale, fov_lat * image_scale
        # the particle front moves down the primary axis at c; light follows at c/n
        along_axis = (position - light.core[None, :]) @ (-light.axis)
        refractivity = self.atmosphere.refractivity(0.5 * (np.take(points.height, index) + light.obs_level))
        time = (-along_axis + distance * (1.0 + refractivity)) / SPEED_OF_LIGHT
        return fov_lon, fov_lat, time

    def muon_direction(self, rng, light: ShowerLight, telescope_position, pointing):
        """Direction (fov_lon, fov_lat, deg) of a muon reaching the telescope: it flies from its
        birth point on the shower axis, so it comes from near the shower's direction, farther
        out the farther the telescope is from the core."""
        height = max(
            rng.normal(self.muon_production_height, self.muon_production_spread), light.obs_level + 1000.0
        )
        birth = entry_point(light.core, light.axis, self.atmosphere, light.obs_level, top_height=height)
        direction = birth - np.asarray(telescope_position, dtype=float)
        lon, lat = ground_to_fov((direction / np.linalg.norm(direction))[None, :], *pointing)
        return np.array([lon[0], lat[0]]) + rng.normal(0.0, self.muon_angular_spread, 2)

    def muon_probability(self, energy, core_distance, mirror_radius):
        """Chance that a muon of a proton shower of ``energy`` TeV passes within
        ``muon_impact_max`` mirror radii of a telescope ``core_distance`` m from the core."""
        scale = self.muon_lateral_scale
        density = self.muons_per_tev * np.asarray(energy) ** 0.85 / (2 * np.pi * scale**2)
        area = np.pi * (self.muon_impact_max * mirror_radius) ** 2
        return 1.0 - np.exp(-density * np.exp(-np.asarray(core_distance) / scale) * area)


def _depth_of_maximum(atmosphere, points, bounds, axis_z, step=20.0):
    """Slant depth (g/cm2) of the most emission points of each shower: the centre of the fullest
    ``step``-wide bin; nan for a shower without points."""
    n_showers = len(bounds) - 1
    counts = np.diff(bounds)
    owner = np.repeat(np.arange(n_showers), counts)
    cos_z = np.take(-np.asarray(axis_z, dtype=float).reshape(-1), owner)
    depth_bin = (atmosphere.vertical_depth(points.height) / cos_z // step).astype(int)
    n_bins = int(depth_bin.max()) + 1 if len(depth_bin) else 1
    hist = np.bincount(owner * n_bins + depth_bin, minlength=n_showers * n_bins).reshape(n_showers, n_bins)
    return np.where(counts > 0, np.argmax(hist, axis=1) * step + 0.5 * step, np.nan)


def quick_expected_photons(
    model: AirShowerModel, rng, particle, energy, alt, az, core_x, core_y, telescope_positions, mirror_areas, obs_level,
    n_points=48, pointing=None, cos_view=None,
):
    """Rough expected photons on each mirror for a batch of showers, shape (n_showers, n_tel).

    A few emission points on the primary axis per shower (a proton counted as an
    electromagnetic shower of 60% of its energy): cheap enough to screen out the
    many thrown showers too faint to trigger before simulating them in full.
    With ``pointing`` (upward unit vector) and ``cos_view`` (one per telescope), only the
    points seen within the angle of that cosine from the pointing count.
    """
    n = len(energy)
    em_energy = energy * (0.6 if particle == "proton" else 1.0)
    axis = axis_direction(alt, az)  # (n, 3)
    first = rng.exponential(PAIR_LENGTH, n)
    idx = np.repeat(np.arange(n), n_points)
    beta = np.log(np.maximum(em_energy[idx] / CRITICAL_ENERGY, 2.0))
    depth = sample_greisen_depth(beta, rng, model.profile_shift)
    slant = first[idx] + (depth - model.profile_shift) * RADIATION_LENGTH
    cos_z = -axis[idx, 2]
    vertical = slant * cos_z
    ground = model.atmosphere.vertical_depth(obs_level)
    valid = vertical < ground
    height = model.atmosphere.height(np.minimum(vertical, ground))
    along = (height - obs_level) / cos_z
    core = np.stack([core_x, core_y, np.zeros(n)], axis=1)
    position = core[idx] - axis[idx] * along[:, None]
    age = shower_age(depth, beta)
    yield_ = (
        model.photons_per_tev * em_energy[idx] / n_points * threshold_factor(model.atmosphere, height, age) * valid
    )
    points = EmissionPoints(position, position, axis[idx], height, age, yield_, None, None)
    out = np.empty((n, len(telescope_positions)))
    for j, (pos, area) in enumerate(zip(telescope_positions, mirror_areas)):
        photons = photons_at_telescope(points, pos, area, model.atmosphere, obs_level, model.angular)
        if cos_view is not None:
            seen = position - np.asarray(pos, dtype=float)[None, :]
            photons = photons * ((seen @ pointing) >= cos_view[j] * np.linalg.norm(seen, axis=1))
        out[:, j] = np.bincount(idx, weights=photons, minlength=n)
    return out
