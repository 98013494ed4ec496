"""`AirShowerSimEventSource`: a ctapipe EventSource that generates labelled air-shower events."""

import itertools
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.time import Time
from ctapipe.atmosphere import TableAtmosphereDensityProfile
from ctapipe.containers import (
    ArrayEventContainer,
    ArrayPointingContainer,
    CoordinateFrameType,
    DL1CameraContainer,
    EventIndexContainer,
    EventType,
    ObservationBlockContainer,
    ObservationBlockState,
    ObservingMode,
    PointingMode,
    SchedulingBlockContainer,
    SchedulingBlockType,
    SimulatedCameraContainer,
    SimulatedEventContainer,
    SimulatedShowerContainer,
    SimulatedShowerDistribution,
    SimulationConfigContainer,
    TelescopeImpactParameterContainer,
    TelescopePointingContainer,
    TelescopeTriggerContainer,
    TriggerContainer,
)
from ctapipe.core.traits import Bool, CaselessStrEnum, Float, Int, Path
from ctapipe.io import DataLevel, EventSource

from .cascade import axis_direction
from .cherenkov import photons_at_telescope
from .conditions import CONDITIONS_STREAM
from .detector import DetectorResponse
from .emission import sample_emission_points_batch, select_where
from .muons import muon_ring_photons
from .sampling import fov_to_altaz, sample_core, sample_direction_in_cone, sample_power_law
from .shower_model import PRIMARY_IDS, AirShowerModel, quick_expected_photons
from .subarray import load_subarray

__all__ = ["AirShowerSimEventSource", "SimulatedBatch"]

#: start of the simulated observation (arbitrary, fixed for reproducibility)
REFERENCE_TIME = Time("2024-01-01T00:00:00", scale="utc")
N_HIST_ENERGY_BINS = 120
N_HIST_CORE_BINS = 50
#: composed once: building it anew for every event is slow
GRAMMAGE = u.g / u.cm**2
#: primaries thrown and screened together, by default
BATCH_SIZE = 256


@dataclass
class SimulatedBatch:
    """Thrown showers of one batch (energy, TeV; core distance, m) and its triggered events
    as (position in the batch, event), not numbered yet."""

    energy: np.ndarray
    core_distance: np.ndarray
    events: list


class AirShowerSimEventSource(EventSource):
    """Generates air showers (gamma, proton, electron) and their DL1 images; reads no file.

    Events come out with calibrated DL1 images and peak times, the simulated shower truth
    and per-telescope true images and impact, ready for ctapipe's ImageProcessor,
    ShowerProcessor and DataWriter. Only triggered events are yielded; ``n_events`` of them.
    """

    particle = CaselessStrEnum(list(PRIMARY_IDS), default_value="gamma", help="Primary particle").tag(config=True)
    n_events = Int(100, help="Number of triggered events to generate").tag(config=True)
    seed = Int(0, min=0, help="Random seed; the same seed gives the same events").tag(config=True)
    energy_min = Float(0.01, help="Minimum true energy, TeV").tag(config=True)
    energy_max = Float(100.0, help="Maximum true energy, TeV").tag(config=True)
    spectral_index = Float(-2.0, help="Power-law index of the simulated spectrum").tag(config=True)
    core_max = Float(500.0, help="Maximum core distance from the array centre on the ground, m").tag(config=True)
    viewcone_min = Float(0.0, help="Minimum offset of diffuse primaries from the pointing, deg").tag(config=True)
    viewcone_max = Float(
        0.0, help="Maximum offset of diffuse primaries from the pointing, deg; 0 means a point source"
    ).tag(config=True)
    wobble = Float(0.0, help="Offset of the point source from the pointing (along fov_lon), deg").tag(config=True)
    zenith = Float(20.0, help="Zenith angle of the pointing, deg").tag(config=True)
    azimuth = Float(0.0, help="Azimuth of the pointing (from north towards east), deg").tag(config=True)
    observation_level = Float(
        None, allow_none=True, help="Observation level, m a.s.l.; default: the subarray reference height"
    ).tag(config=True)
    subarray_file = Path(
        None,
        allow_none=True,
        exists=True,
        directory_ok=False,
        help="ctapipe file to take the subarray from (default LST-1)",
    ).tag(config=True)
    min_telescopes = Int(1, help="Telescopes that must trigger for a subarray trigger").tag(config=True)
    obs_id = Int(None, allow_none=True, help="Observation id; default: seed + 1").tag(config=True)
    write_true_image = Bool(True, help="Fill the per-telescope true p.e. images").tag(config=True)
    # LST-1 default trigger: none of ~4000 gamma and proton images expecting 30-40 p.e. triggered
    min_expected_pe = Float(
        40.0,
        help="Telescopes expecting fewer p.e. than this (protons: from the emission points seen within"
        " screen_fov_margin of the camera) are not simulated further (cannot trigger)",
    ).tag(config=True)
    screen_points = Int(
        64,
        min=0,
        help="Second screen of the proton showers that pass the quick one: this many emission points drawn from"
        " each one's cascade estimate its expected p.e. in each telescope; telescopes expecting less than"
        " screen_margin x min_expected_pe (and no muon) are not simulated further. 0: no second screen",
    ).tag(config=True)
    screen_margin = Float(
        0.25, help="Share of min_expected_pe the second screen's estimate must reach (see screen_points)"
    ).tag(config=True)
    quick_fov_margin = Float(
        3.0,
        allow_none=True,
        help="The quick screen of proton showers counts the light of its points (on the primary axis) seen up to"
        " this far outside the camera, deg; None: wherever they are seen",
    ).tag(config=True)
    screen_fov_margin = Float(
        1.0,
        help="The second screen, and the min_expected_pe cut of each proton image, count the light of points"
        " seen up to this far outside the camera, deg",
    ).tag(config=True)
    image_fov_margin = Float(
        3.0,
        help="Proton images leave out the light of emission points seen farther than this outside the camera,"
        " deg: about 0.2% of the p.e. that land in the camera (quickstart), 42% of those drawn",
    ).tag(config=True)
    showers_per_batch = Int(
        None,
        allow_none=True,
        help="Primaries thrown and screened together (None: 256); each batch has its own random stream,"
        " so the events depend on this (not on the number of workers)",
    ).tag(config=True)
    max_pe = Int(300_000, help="Cap of simulated p.e. per telescope (brighter images are scaled)").tag(config=True)

    def __init__(self, input_url=None, config=None, parent=None, **kwargs):
        super().__init__(input_url=input_url, config=config, parent=parent, **kwargs)
        self.metadata["is_simulation"] = True
        self._subarray = load_subarray(self.subarray_file)
        if self.allowed_tels:
            self._subarray = self._subarray.select_subarray(self.allowed_tels)
        if self.observation_level is None:
            ref = self._subarray.reference_location
            self.observation_level = float(ref.height.to_value(u.m)) if ref is not None else 2200.0
        if self.obs_id is None:
            self.obs_id = int(self.seed) % (2**31 - 1) + 1
        if not self.energy_max > self.energy_min > 0:
            raise ValueError(f"need 0 < energy_min < energy_max, got {self.energy_min}, {self.energy_max}")
        self.shower_model = AirShowerModel(parent=self)
        self.detector = DetectorResponse(self._subarray, parent=self)
        self.n_thrown = 0
        self._thrown_energy = []
        self._thrown_core = []
        # ground positions and mirror areas in the order of tel_ids, m and m2
        tel_ids = self._subarray.tel_ids
        self._tel_positions = np.array([self._subarray.positions[t].to_value(u.m) for t in tel_ids])
        self._mirror_areas = np.array([self._subarray.tel[t].optics.mirror_area.to_value(u.m**2) for t in tel_ids])
        self._tel_index = {int(t): i for i, t in enumerate(tel_ids)}
        self._mirror_radii = np.sqrt(self._mirror_areas / np.pi)
        self._coma = [self.detector.coma_optics(t, r) for t, r in zip(tel_ids, self._mirror_radii)]
        self._pointing = (np.deg2rad(90.0 - self.zenith), np.deg2rad(self.azimuth))
        self._pointing_vector = -axis_direction(*self._pointing)

    @staticmethod
    def is_compatible(file_path):
        return False

    @property
    def is_simulation(self):
        return True

    @property
    def subarray(self):
        return self._subarray

    @property
    def datalevels(self):
        return (DataLevel.DL1_IMAGES,)

    @property
    def atmosphere_density_profile(self):
        # tabulated, since DataWriter can only store tabular profiles
        atm = self.shower_model.atmosphere
        height = np.linspace(0.0, 100e3, 201)
        table = Table(
            dict(
                height=(height * u.m).to(u.km),
                density=atm.density(height) * u.g / u.cm**3,
                column_density=atm.vertical_depth(height) * u.g / u.cm**2,
            )
        )
        return TableAtmosphereDensityProfile(table=table)

    @property
    def simulation_config(self):
        diffuse = self.viewcone_max > 0
        alt, az = self._pointing
        return {
            self.obs_id: SimulationConfigContainer(
                run_number=self.obs_id,
                energy_range_min=self.energy_min * u.TeV,
                energy_range_max=self.energy_max * u.TeV,
                prod_site_alt=self.observation_level * u.m,
                spectral_index=self.spectral_index,
                n_showers=self.n_thrown,
                shower_reuse=1,
                max_alt=alt * u.rad,
                min_alt=alt * u.rad,
                max_az=az * u.rad,
                min_az=az * u.rad,
                diffuse=diffuse,
                max_viewcone_radius=(self.viewcone_max if diffuse else self.wobble) * u.deg,
                min_viewcone_radius=(self.viewcone_min if diffuse else self.wobble) * u.deg,
                max_scatter_range=self.core_max * u.m,
                min_scatter_range=0.0 * u.m,
                core_pos_mode=1,
                atmosphere=0,
                corsika_wlen_min=300 * u.nm,
                corsika_wlen_max=600 * u.nm,
            )
        }

    @property
    def scheduling_blocks(self):
        return {
            self.obs_id: SchedulingBlockContainer(
                sb_id=np.uint64(self.obs_id),
                sb_type=SchedulingBlockType.OBSERVATION,
                producer_id="simulation",
                observing_mode=ObservingMode.UNKNOWN,
                pointing_mode=PointingMode.DRIFT,
            )
        }

    @property
    def observation_blocks(self):
        alt, az = self._pointing
        return {
            self.obs_id: ObservationBlockContainer(
                obs_id=np.uint64(self.obs_id),
                sb_id=np.uint64(self.obs_id),
                producer_id="simulation",
                state=ObservationBlockState.COMPLETED_SUCCEDED,
                subarray_pointing_lat=alt * u.rad,
                subarray_pointing_lon=az * u.rad,
                subarray_pointing_frame=CoordinateFrameType.ALTAZ,
                actual_start_time=REFERENCE_TIME,
                scheduled_start_time=REFERENCE_TIME,
            )
        }

    @property
    def simulated_shower_distributions(self):
        """Histogram of all thrown showers in (core distance, energy), as sim_telarray writes it."""
        bins_energy = np.geomspace(self.energy_min, self.energy_max, N_HIST_ENERGY_BINS + 1)
        bins_core = np.linspace(0.0, self.core_max, N_HIST_CORE_BINS + 1)
        hist, _, _ = np.histogram2d(
            np.concatenate([np.zeros(0), *self._thrown_core]),
            np.concatenate([np.zeros(0), *self._thrown_energy]),
            bins=[bins_core, bins_energy],
        )
        return {
            self.obs_id: SimulatedShowerDistribution(
                obs_id=self.obs_id,
                hist_id=1,
                n_entries=self.n_thrown,
                bins_core_dist=bins_core * u.m,
                bins_energy=bins_energy * u.TeV,
                histogram=hist,
            )
        }

    def _sample_primaries(self, rng, size):
        """A batch of thrown primaries: energy (TeV), alt, az (rad), core x, y (m)."""
        energy = sample_power_law(rng, self.energy_min, self.energy_max, self.spectral_index, size)
        if self.viewcone_max > 0:
            lon, lat = sample_direction_in_cone(rng, self.viewcone_min, self.viewcone_max, size)
        else:
            lon, lat = np.full(size, self.wobble), np.zeros(size)
        alt, az = fov_to_altaz(lon, lat, *self._pointing)
        core_x, core_y = sample_core(rng, self.core_max, size)
        return energy, alt, az, core_x, core_y

    @property
    def _batch_size(self):
        # the module default is read at run time (tests shrink it)
        return self.showers_per_batch or BATCH_SIZE

    def _expected_pe(self, showers, candidates):
        """Expected p.e. of every emission point of ``showers`` in each telescope (index j of
        the tel_ids), computed for the points of the showers that are candidates there
        (``candidates``: showers x telescopes), zero for the others (`_light_in_view`); and
        each shower's expected p.e. from the points seen near the camera there."""
        counts = np.diff(showers.bounds)
        owner = np.repeat(np.arange(len(counts)), counts)
        expected, near_camera = {}, {}
        for j, tel_id in enumerate(self._tel_index):
            if not candidates[:, j].any():
                continue
            selected = np.repeat(candidates[:, j], counts)
            expected[j], near = self._light_in_view(showers.points, tel_id, selected)
            near_camera[j] = np.bincount(owner, weights=expected[j] * near, minlength=len(counts))
        return expected, near_camera

    def _light_in_view(self, points, tel_id, selected=None):
        """Expected p.e. of each of ``points`` in telescope ``tel_id``, zero for those not
        ``selected``; and which points count for ``min_expected_pe``.

        For protons, the points seen (on their sub-shower axis) beyond ``image_fov_margin`` of
        the camera get zero too (their light practically never lands in it), and only those
        seen within ``screen_fov_margin`` count. Gammas keep all their light, as before: for
        them it would save nothing, and their events stay the same for a given seed.
        """
        in_image = np.ones(len(points), dtype=bool) if selected is None else selected.copy()
        counted = np.ones(len(points), dtype=bool)
        if self.particle == "proton":
            j = self._tel_index[tel_id]
            cos_offset = self._cos_offset(points.axis_position, j)
            in_image &= cos_offset >= self._cos_view(self.image_fov_margin)[j]
            counted = cos_offset >= self._cos_view(self.screen_fov_margin)[j]
        pe = np.zeros(len(points))
        pe[in_image] = self._expected_pe_of(select_where(points, in_image), tel_id)
        return pe, counted

    def _cos_offset(self, positions, j):
        """Cosine of the angle between the pointing and ``positions`` (n, 3) seen from telescope j."""
        seen = positions - self._tel_positions[j][None, :]
        return (seen @ self._pointing_vector) / np.linalg.norm(seen, axis=1)

    def _cos_view(self, margin):
        """Cosine of the camera radius plus ``margin`` deg, for each telescope."""
        return np.cos(np.deg2rad([self.detector.camera_fov_radius(t) + margin for t in self._tel_index]))

    def _screen_estimate(self, rng, cascades, candidates):
        """Photons expected on each mirror (showers x telescopes) from ``screen_points``
        emission points of each cascade, for the candidates (``candidates``, same shape;
        zero elsewhere), counting only the points seen within ``screen_fov_margin`` of the
        camera: light from elsewhere cannot reach the pixels (it is never more than a few
        tenths of a degree from its point's direction)."""
        model = self.shower_model
        n_points = np.full(len(cascades), self.screen_points)
        points, bounds = sample_emission_points_batch(
            [c[0] for c in cascades],
            n_points,
            rng,
            model.atmosphere,
            self.observation_level,
            model.photons_per_tev,
            model.lateral_scale,
            model.profile_shift,
            model.lateral_shape,
        )
        counts = np.diff(bounds)
        owner = np.repeat(np.arange(len(cascades)), counts)
        out = np.zeros(candidates.shape)
        for j in range(candidates.shape[1]):
            if not candidates[:, j].any():
                continue
            selected = np.repeat(candidates[:, j], counts)
            tel_points = select_where(points, selected)
            photons = photons_at_telescope(
                tel_points,
                self._tel_positions[j],
                self._mirror_areas[j],
                model.atmosphere,
                self.observation_level,
                model.angular,
            )
            in_view = self._cos_offset(tel_points.position, j) >= self._cos_view(self.screen_fov_margin)[j]
            out[:, j] = np.bincount(owner[selected], weights=photons * in_view, minlength=len(cascades))
        return out

    def _expected_pe_of(self, points, tel_id):
        i = self._tel_index[tel_id]
        photons = photons_at_telescope(
            points,
            self._tel_positions[i],
            self._mirror_areas[i],
            self.shower_model.atmosphere,
            self.observation_level,
            self.shower_model.angular,
        )
        return photons * self.detector.photon_detection_efficiency.tel[tel_id]

    def _telescope_image(self, rng, tel_id, light, muon, expected=None, near_camera=None, conditions_rng=None):
        """DL1-like camera image of one telescope, or None if nothing can trigger it.
        ``expected``, ``near_camera``: the expected p.e. of each emission point there and
        the sum over those seen near the camera (`_light_in_view`), when known;
        ``conditions_rng``: the stream of the observing conditions (default: ``rng``)."""
        model, detector = self.shower_model, self.detector
        i = self._tel_index[tel_id]
        position, radius = self._tel_positions[i], self._mirror_radii[i]
        if expected is None:
            expected, near = self._light_in_view(light.points, tel_id)
            near_camera = expected[near].sum()
        # protons: the least near_camera of a triggered image was 45-57 p.e. in the recordings of
        # benchmarks/proton_image_cut_study.py; gammas: near_camera is all their light
        if near_camera < self.min_expected_pe and not muon:
            return None
        n_pe = int(rng.poisson(float(expected.sum())))
        scale = 1.0
        if n_pe > self.max_pe:
            scale, n_pe = n_pe / self.max_pe, self.max_pe
        lon = lat = time = np.zeros(0)
        if n_pe > 0:
            coma, image_scale = self._coma[i]
            lon, lat, time = model.photoelectrons(
                rng,
                light,
                expected,
                n_pe,
                position,
                self._pointing,
                radius,
                detector.focus_distance.tel[tel_id],
                coma,
                image_scale,
            )
        if muon:
            impact = model.muon_impact_max * radius * np.sqrt(rng.random())
            centre = model.muon_direction(rng, light, position, self._pointing)
            # the light of a muon passing at ``impact`` was emitted about impact / angle higher up
            ground_angle = model.atmosphere.cherenkov_angle(self.observation_level)
            height = max(300.0, impact / ground_angle)
            ring_radius = np.rad2deg(model.atmosphere.cherenkov_angle(self.observation_level + height))
            m_lon, m_lat = muon_ring_photons(
                rng, radius, ring_radius * rng.uniform(0.93, 1.0), model.muon_pe_per_metre_rad, centre, impact
            )
            t0 = np.median(time) if len(time) else 0.0
            lon, lat = np.concatenate([lon, m_lon]), np.concatenate([lat, m_lat])
            time = np.concatenate([time, t0 + rng.normal(0.0, 1.0, len(m_lon))])
        if len(lon) < 3:
            return None
        # DL1 peak times sit in the readout window: shift the light front to a fixed offset
        time = time - np.median(time) + detector.time_offset
        image = detector.respond(tel_id, lon, lat, time, rng, conditions_rng)
        if scale != 1.0:
            image.image *= np.float32(scale)
            image.true_image = np.round(image.true_image * scale).astype(np.int32)
        return image

    def simulate_shower(
        self, rng, energy, alt, az, core_x, core_y, tel_ids=None, muon=False, conditions_rng=None
    ):
        """Images of one given shower (TeV, rad, m) in the given telescopes, without trigger.

        Returns (ShowerLight, {tel_id: CameraImage}); telescopes with too little light are
        left out. Useful to study the response at a fixed geometry. The observing
        conditions draw from ``conditions_rng`` (default: ``rng``).
        """
        light = self.shower_model.shower(rng, self.particle, energy, alt, az, core_x, core_y, self.observation_level)
        images = {}
        for tel_id in tel_ids if tel_ids is not None else self._subarray.tel:
            image = self._telescope_image(rng, tel_id, light, muon, conditions_rng=conditions_rng)
            if image is not None:
                images[tel_id] = image
        return light, images

    def _impact_distance(self, light):
        """Perpendicular distance of each telescope from the shower axis, m."""
        rel = self._tel_positions - light.core[None, :]
        along = rel @ light.axis
        return np.sqrt(np.maximum((rel**2).sum(axis=1) - along**2, 0.0))

    def _generator(self):
        yield from self.collect(self.simulate_batch(index) for index in itertools.count())

    def simulate_batch(self, index) -> SimulatedBatch:
        """Batch ``index`` of ``showers_per_batch`` thrown showers and the events that triggered.

        Each batch has its own random stream from (seed, index), so batches can be simulated
        in any order or in parallel processes and still give the same events.
        """
        rng = np.random.default_rng([self.seed, index])
        tel_ids = list(self._tel_index)
        positions, areas = self._tel_positions[:, :2], self._mirror_areas
        efficiency = np.array([self.detector.photon_detection_efficiency.tel[t] for t in tel_ids])
        # screening margin: the quick estimate is rough, protons more so; triggered events
        # occur down to 15 (protons 7.5) quick p.e., so that is where the default screens
        margin = 0.1875 if self.particle == "proton" else 0.375
        batch = self._sample_primaries(rng, self._batch_size)
        view = {}
        if self.particle == "proton" and self.quick_fov_margin is not None:
            # a shower whose light reaches the mirror from outside the field of view cannot
            # trigger; the margin covers the spread of a hadronic cascade's sub-showers
            view = dict(pointing=self._pointing_vector, cos_view=self._cos_view(self.quick_fov_margin))
        quick = (
            quick_expected_photons(
                self.shower_model,
                rng,
                self.particle,
                *batch,
                self._tel_positions,
                areas,
                self.observation_level,
                **view,
            )
            * efficiency[None, :]
        )
        if self.particle == "proton":
            core_distance = np.hypot(
                batch[3][:, None] - positions[None, :, 0], batch[4][:, None] - positions[None, :, 1]
            )
            radii = np.sqrt(areas / np.pi)[None, :]
            p_muon = self.shower_model.muon_probability(batch[0][:, None], core_distance, radii)
            muons = rng.random((self._batch_size, len(tel_ids))) < p_muon
        else:
            muons = np.zeros((self._batch_size, len(tel_ids)), dtype=bool)
        candidates = (quick >= margin * self.min_expected_pe) | muons
        todo = np.flatnonzero(candidates.any(axis=1))
        model, level = self.shower_model, self.observation_level
        cascades = model.cascades(rng, self.particle, *(b[todo] for b in batch), level)
        if self.particle == "proton" and self.screen_points > 0 and len(todo):
            # the cascades are cheap, their emission points and images are not: a few points
            # of each cascade (their own random stream) tell the telescopes that can trigger.
            # Over 20480 thrown quickstart protons and 4096 of the benchmark's, the least
            # estimate of a triggered telescope was 28 and 25 p.e. (screen at 10). Gammas: the
            # quick screen is tight already (a second one would keep 83% of those it passes)
            screen_rng = np.random.default_rng([self.seed, index, 2])
            light_only = candidates[todo] & ~muons[todo]  # a muon's telescope is simulated anyway
            estimate = self._screen_estimate(screen_rng, cascades, light_only) * efficiency[None, :]
            candidates[todo] &= ~light_only | (estimate >= self.screen_margin * self.min_expected_pe)
            kept = candidates[todo].any(axis=1)
            todo, cascades = todo[kept], [c for c, k in zip(cascades, kept) if k]
        showers = model.shower_batch(rng, self.particle, *(b[todo] for b in batch), level, cascades)
        # the observing conditions draw from a stream of their own: the nominal draws stay as they are
        conditions_rng = None
        if not self.detector.conditions.nominal:
            conditions_rng = np.random.default_rng([self.seed, index, CONDITIONS_STREAM])
        expected, near_camera = self._expected_pe(showers, candidates[todo])
        events = []
        for k, (i, light) in enumerate(zip(todo, showers.lights)):
            energy, alt, az, core_x, core_y = (float(b[i]) for b in batch)
            images = {}
            for j in np.flatnonzero(candidates[i]):
                tel_id = tel_ids[j]
                per_point = expected[j][showers.bounds[k] : showers.bounds[k + 1]]
                image = self._telescope_image(
                    rng, tel_id, light, muons[i, j], per_point, near_camera[j][k], conditions_rng
                )
                if image is not None and self.detector.triggered(tel_id, image):
                    images[tel_id] = image
            if len(images) >= max(self.min_telescopes, 1):
                events.append((int(i), self._make_event(energy, alt, az, core_x, core_y, light, images)))
        return SimulatedBatch(energy=batch[0], core_distance=np.hypot(batch[3], batch[4]), events=events)

    def collect(self, batches):
        """Events of consecutive batches, numbered, until ``n_events``; the thrown showers
        are counted up to the last event taken."""
        self.n_thrown, self._thrown_energy, self._thrown_core = 0, [], []
        counter = 0
        if self.n_events <= 0:
            return
        for batch in batches:
            start = 0
            for position, event in batch.events:
                self._count_thrown(batch, start, position + 1)
                start = position + 1
                self._number(event, counter)
                counter += 1
                yield event
                if counter >= self.n_events:
                    return
            self._count_thrown(batch, start, len(batch.energy))

    def _count_thrown(self, batch, start, stop):
        self.n_thrown += stop - start
        self._thrown_energy.append(batch.energy[start:stop])
        self._thrown_core.append(batch.core_distance[start:stop])

    def _event_time(self, counter, chunk=1000):
        """Trigger times 10 ms apart; astropy Time arithmetic is slow, so done per chunk."""
        first = counter - counter % chunk
        if getattr(self, "_times_first", None) != first:
            self._times = REFERENCE_TIME + (first + np.arange(chunk)) * 0.01 * u.s
            self._times_first = first
        return self._times[counter - first]

    def _number(self, event, counter):
        """Event id, count and trigger times, known once the events are in order."""
        time = self._event_time(counter)
        event.index.event_id = counter + 1
        event.count = counter
        event.trigger.time = time
        for tel_trigger in event.trigger.tel.values():
            tel_trigger.time = time

    def _make_event(self, energy, alt, az, core_x, core_y, light, images):
        alt_p, az_p = self._pointing
        tel_ids = np.array(sorted(images), dtype=np.uint16)
        event = ArrayEventContainer(
            index=EventIndexContainer(obs_id=self.obs_id),
            trigger=TriggerContainer(
                tels_with_trigger=tel_ids,
                event_type=EventType.SUBARRAY,
            ),
            simulation=SimulatedEventContainer(
                shower=SimulatedShowerContainer(
                    energy=energy * u.TeV,
                    alt=alt * u.rad,
                    az=az * u.rad,
                    core_x=core_x * u.m,
                    core_y=core_y * u.m,
                    h_first_int=light.h_first_int * u.m,
                    x_max=light.x_max * GRAMMAGE,
                    starting_grammage=0.0 * GRAMMAGE,
                    shower_primary_id=PRIMARY_IDS[self.particle],
                )
            ),
        )
        event.meta["origin"] = "AirShowerSimEventSource"
        event.monitoring.pointing = ArrayPointingContainer(array_azimuth=az_p * u.rad, array_altitude=alt_p * u.rad)
        impact = self._impact_distance(light)
        for tel_id in tel_ids:
            tel_id = int(tel_id)
            image = images[tel_id]
            event.trigger.tel[tel_id] = TelescopeTriggerContainer()
            event.monitoring.tel[tel_id].pointing = TelescopePointingContainer(
                azimuth=az_p * u.rad, altitude=alt_p * u.rad
            )
            event.simulation.tel[tel_id] = SimulatedCameraContainer(
                true_image_sum=int(image.true_image.sum()),
                true_image=image.true_image if self.write_true_image else None,
                impact=TelescopeImpactParameterContainer(
                    distance=impact[self._tel_index[tel_id]] * u.m,
                    distance_uncert=0.0 * u.m,
                    prefix="true_impact",
                ),
            )
            event.dl1.tel[tel_id] = DL1CameraContainer(image=image.image, peak_time=image.peak_time, is_valid=True)
        return event
