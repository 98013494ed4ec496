"""Telescope and camera response: optics, photon detection, noise, timing, trigger."""

from functools import lru_cache

import astropy.units as u
import numpy as np
from ctapipe.core import TelescopeComponent
from ctapipe.core.traits import Bool, Float, FloatTelescopeParameter, IntTelescopeParameter
from scipy.stats import poisson

from .conditions import ObservingConditions
from .optics import coma_coefficient
from .pixel_lookup import PixelLookup

__all__ = ["DetectorResponse", "CameraImage", "poisson_counts"]


@lru_cache(maxsize=16)
def _poisson_cdf(mean):
    k = np.arange(int(mean + 12 * np.sqrt(mean) + 20))
    return np.cumsum(poisson.pmf(k, mean))


def poisson_counts(mean, rng, size):
    """Poisson counts of ``mean`` by inverting its cumulative distribution: one uniform per
    count, several times faster than ``rng.poisson`` for a whole camera of small means."""
    if mean <= 0:
        return np.zeros(size, dtype=np.int64)
    return np.searchsorted(_poisson_cdf(float(mean)), rng.random(size), side="right")


class CameraImage:
    """Calibrated charge (p.e.) and peak time (ns) per pixel, plus the true p.e. counts."""

    __slots__ = ("image", "peak_time", "true_image")

    def __init__(self, image, peak_time, true_image):
        self.image = image
        self.peak_time = peak_time
        self.true_image = true_image


class DetectorResponse(TelescopeComponent):
    """Photons on the mirror -> DL1-like charges and peak times, and the telescope trigger.

    Defaults are LST-like (dark-sky night sky background, ~1 ns sampling). The observing
    conditions of the run (`ObservingConditions`, nominal by default) change the response.
    """

    photon_detection_efficiency = FloatTelescopeParameter(
        default_value=0.14,
        help="Mirror reflectivity x window x photon-detection efficiency x light-guide, 300-600 nm",
    ).tag(config=True)
    psf_sigma = FloatTelescopeParameter(
        default_value=0.035, help="Gaussian sigma of the optical point spread function, deg"
    ).tag(config=True)
    focus_distance = FloatTelescopeParameter(
        default_value=10000.0,
        help="Distance along the line of sight at which the dish is focused, m (0: infinity);"
        " light from nearer or farther is blurred by the dish size",
    ).tag(config=True)
    coma = Bool(
        True,
        help="Off-axis coma of the dish, set from each telescope's effective over equivalent focal length"
        " (no coma where they are equal)",
    ).tag(config=True)
    nsb_pe = FloatTelescopeParameter(
        default_value=1.8, help="Mean night-sky-background p.e. per pixel in the integration window"
    ).tag(config=True)
    electronic_noise_pe = FloatTelescopeParameter(
        default_value=0.3, help="Electronic noise sigma per pixel, p.e."
    ).tag(config=True)
    excess_noise = FloatTelescopeParameter(
        default_value=0.4, help="Relative sigma of the single-p.e. charge (PMT excess noise)"
    ).tag(config=True)
    time_jitter = FloatTelescopeParameter(
        default_value=1.2, help="Single-p.e. arrival time spread (transit time, pulse shape), ns"
    ).tag(config=True)
    peak_time_noise = FloatTelescopeParameter(
        default_value=0.0,
        help="Peak-time error from the noise on the pulse: this many ns (about the pulse's rise time) times"
        " the noise rms over the pixel's charge; 0: none",
    ).tag(config=True)
    readout_window = FloatTelescopeParameter(default_value=40.0, help="Readout window length, ns").tag(
        config=True
    )
    trigger_threshold = FloatTelescopeParameter(
        default_value=6.0, help="Pixel threshold of the telescope trigger, p.e."
    ).tag(config=True)
    trigger_pixels = IntTelescopeParameter(
        default_value=3, help="Trigger: number of neighbouring pixels above threshold (a pixel and N-1 neighbours)"
    ).tag(config=True)
    time_offset = Float(default_value=18.0, help="Peak time of the light front at the telescope, ns").tag(
        config=True
    )

    def __init__(self, subarray, config=None, parent=None, **kwargs):
        super().__init__(subarray=subarray, config=config, parent=parent, **kwargs)
        self._lookups = {}
        self._by_tel = {}
        self.conditions = ObservingConditions(parent=self)
        self._cameras = {}

    def lookup(self, tel_id) -> PixelLookup:
        if tel_id not in self._by_tel:
            camera = self.subarray.tel[tel_id].camera
            key = str(camera)  # telescopes with the same camera share its tables
            if key not in self._lookups:
                self._lookups[key] = PixelLookup(camera.geometry), camera.geometry.neighbor_matrix_sparse
            self._by_tel[tel_id] = self._lookups[key]
        return self._by_tel[tel_id][0]

    def coma_optics(self, tel_id, mirror_radius):
        """(K/f² in 1/m², image scale) of the telescope's dish: the coma coefficient, and
        f_eq over the focal length of the camera frame the pixels are looked up in, which
        maps the coma's mean outward shift back onto the camera when that is f_eff."""
        if not self.coma:
            return 0.0, 1.0
        tel = self.subarray.tel[tel_id]
        f_eq = tel.optics.equivalent_focal_length.to_value(u.m)
        coefficient = coma_coefficient(f_eq, tel.optics.effective_focal_length.to_value(u.m), mirror_radius)
        frame = tel.camera.geometry.frame
        f_camera = frame.focal_length.to_value(u.m) if frame is not None else f_eq
        return coefficient, (f_eq / f_camera if coefficient > 0 else 1.0)

    def camera_fov_radius(self, tel_id):
        """Radius of the camera in deg, to skip light that cannot land on it."""
        return self.lookup(tel_id).radius

    def camera_conditions(self, tel_id):
        """The fixed `CameraConditions` of a telescope, None under nominal conditions."""
        if self.conditions.nominal:
            return None
        if tel_id not in self._cameras:
            lookup = self.lookup(tel_id)
            # the stars are spread over the largest camera: the same sky in every telescope
            field = max(self.lookup(t).radius - self.lookup(t).pixel_pitch for t in self.subarray.tel)
            self._cameras[tel_id] = self.conditions.camera(
                tel_id, lookup, self._by_tel[tel_id][1], self.nsb_pe.tel[tel_id], field
            )
        return self._cameras[tel_id]

    def n_photoelectrons(self, tel_id, photons, rng):
        """Poisson draw of the p.e. count from the expected photons on the mirror."""
        return rng.poisson(photons * self.photon_detection_efficiency.tel[tel_id])

    def respond(self, tel_id, fov_lon, fov_lat, arrival_time, rng, conditions_rng=None) -> CameraImage:
        """Charges and peak times from individual p.e. directions (deg) and arrival times (ns).

        The observing conditions draw from ``conditions_rng`` (default: ``rng``), after the
        nominal draws, which they leave as they are.
        """
        camera = self.camera_conditions(tel_id)
        conditions_rng = rng if conditions_rng is None else conditions_rng
        lookup = self.lookup(tel_id)
        n_pix = lookup.n_pixels
        psf = self.psf_sigma.tel[tel_id]
        n = len(fov_lon)
        pixel = lookup(fov_lon + psf * rng.standard_normal(n), fov_lat + psf * rng.standard_normal(n))
        hit = pixel >= 0
        pixel = pixel[hit]
        times = arrival_time[hit] + self.time_jitter.tel[tel_id] * rng.standard_normal(len(pixel))
        if camera is not None:
            pixel, times = camera.thin(pixel, times, conditions_rng)
        true_image = np.bincount(pixel, minlength=n_pix).astype(np.int32)
        time_sum = np.bincount(pixel, weights=times, minlength=n_pix)

        nsb = self.nsb_pe.tel[tel_id]
        n_pe = true_image.astype(np.float64)
        signal = n_pe + self.excess_noise.tel[tel_id] * np.sqrt(n_pe) * rng.standard_normal(n_pix)
        electronic = self.electronic_noise_pe.tel[tel_id] * rng.standard_normal(n_pix)
        noise = poisson_counts(nsb, rng, n_pix) - nsb + electronic
        if camera is not None and camera.nsb_rate is not None:
            # the nominal draw is made all the same, so that the nominal stream does not move
            nsb = camera.nsb_rate
            noise = camera.night_sky(conditions_rng) + electronic
        image = (signal + noise).astype(np.float32)

        window = self.readout_window.tel[tel_id]
        mean_time = np.divide(time_sum, n_pe, out=np.zeros(n_pix), where=n_pe > 0)
        signal_dominated = rng.random(n_pix) < n_pe / (n_pe + 0.5 * nsb + 1e-9)
        peak_time = np.where(signal_dominated, mean_time, rng.uniform(0.0, window, n_pix))
        noise_scale = self.peak_time_noise.tel[tel_id]
        if noise_scale > 0:
            # the noise shifts the pulse's peak by about rise time x noise / amplitude
            noise_rms = np.sqrt(nsb + self.electronic_noise_pe.tel[tel_id] ** 2)
            peak_time = peak_time + noise_scale * noise_rms / np.maximum(n_pe, 1.0) * rng.standard_normal(n_pix)
        if camera is not None:
            image, peak_time = camera.finish(image, peak_time)
            image = image.astype(np.float32, copy=False)
        peak_time = np.clip(peak_time, 0.0, window).astype(np.float32)
        return CameraImage(image=image, peak_time=peak_time, true_image=true_image)

    def triggered(self, tel_id, image: CameraImage) -> bool:
        """N neighbouring pixels above threshold (compact next-neighbour group)."""
        self.lookup(tel_id)
        neighbours = self._by_tel[tel_id][1]
        above = image.image > self.trigger_threshold.tel[tel_id]
        if above.sum() < self.trigger_pixels.tel[tel_id]:
            return False
        n_neighbours_above = neighbours @ above.astype(np.int32)
        return bool(np.any(above & (n_neighbours_above >= self.trigger_pixels.tel[tel_id] - 1)))
