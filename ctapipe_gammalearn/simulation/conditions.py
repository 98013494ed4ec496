"""Observing conditions: how observed runs differ from the nominal Monte Carlo.

Extra (or less) night-sky background, uniform or with a gradient across the camera; stars
(a few pixels with a high background rate); dead pixels (zero signal) and hot pixels (a
high background rate); a lower optical efficiency (dirty mirrors, haze); per-pixel gains
and time offsets left after calibration. All are off by default, and with all of them off
the detector response is exactly the nominal one.

Two kinds of random numbers, neither taken from the nominal streams, so that the nominal
draws (showers, p.e., nominal noise) do not move when a condition is switched on:

- the fixed maps of a run (which pixels are dead or hot, where the stars are, the gains
  and offsets) come from ``conditions_seed`` alone, so the gamma and the proton files of
  one observing condition share them whatever their event seeds;
- the per-event draws (the p.e. lost to a lower efficiency, the background) come from a
  stream of each batch of showers, ``[seed, batch index, CONDITIONS_STREAM]``, so the
  output still does not depend on the number of workers.
"""

import astropy.units as u
import numpy as np
from astropy.table import Table
from ctapipe.core import Component
from ctapipe.core.traits import Float, Int
from traitlets import observe

__all__ = ["CONDITIONS_STREAM", "CONDITIONS_TABLE", "CameraConditions", "ObservingConditions"]

#: third word of the per-batch random stream of the conditions (1: ctapipe's timing fit, 2: the proton screen)
CONDITIONS_STREAM = 3
#: where the simulator records the conditions of a file
CONDITIONS_TABLE = "/configuration/simulation/observing_conditions"

# sub-streams of the fixed maps, so that changing one condition leaves the others' maps as they were;
# the tag keeps them apart from the per-batch streams [seed, batch index, k] when conditions_seed == seed
_MAPS = 2**32 - 1
_STARS, _DEAD, _HOT, _GAIN, _TIME = range(5)

#: trait -> unit of the recorded value (None: dimensionless)
_UNITS = {
    "nsb_scale": None,
    "nsb_gradient": None,
    "nsb_gradient_angle": u.deg,
    "n_stars": None,
    "star_nsb_pe": None,
    "star_neighbour_share": None,
    "dead_pixel_fraction": None,
    "hot_pixel_fraction": None,
    "hot_pixel_nsb_pe": None,
    "optical_efficiency_scale": None,
    "gain_spread": None,
    "time_offset_spread": u.ns,
    "conditions_seed": None,
}


class CameraConditions:
    """The fixed maps of one telescope and the per-event changes they make.

    ``nsb_rate``: background p.e. per pixel in the integration window (None: the nominal
    one, drawn as usual); ``dead``: pixels reading zero; ``gain`` / ``time_offset``:
    per-pixel factor and shift (None: none); ``efficiency``: share of the p.e. kept.
    """

    __slots__ = ("nsb_rate", "dead", "gain", "time_offset", "efficiency")

    def __init__(self, nsb_rate=None, dead=None, gain=None, time_offset=None, efficiency=1.0):
        self.nsb_rate = nsb_rate
        self.dead = dead
        self.gain = gain
        self.time_offset = time_offset
        self.efficiency = efficiency

    def thin(self, pixel, times, rng):
        """The p.e. (pixel, arrival time) a lower optical efficiency keeps: a binomial
        thinning, so Poisson counts stay Poisson with the scaled mean."""
        if self.efficiency >= 1.0:
            return pixel, times
        keep = rng.random(len(pixel)) < self.efficiency
        return pixel[keep], times[keep]

    def night_sky(self, rng):
        """Background charge per pixel with its mean subtracted (calibrated pedestal 0)."""
        return rng.poisson(self.nsb_rate) - self.nsb_rate

    def finish(self, image, peak_time):
        """Gains and time offsets left after calibration; dead pixels read zero."""
        if self.gain is not None:
            image = image * self.gain
        if self.time_offset is not None:
            peak_time = peak_time + self.time_offset
        if self.dead is not None:
            image = np.where(self.dead, 0.0, image)
            peak_time = np.where(self.dead, 0.0, peak_time)
        return image, peak_time


class ObservingConditions(Component):
    """Observing conditions of the simulated run; the defaults are the nominal Monte Carlo."""

    nsb_scale = Float(
        1.0, min=0.0, help="Factor on the nominal night-sky background rate (DetectorResponse.nsb_pe)"
    ).tag(config=True)
    nsb_gradient = Float(
        0.0,
        min=0.0,
        help="Gradient of the background across the camera: the factor is nsb_scale x (1 + nsb_gradient x d / R),"
        " d the pixel's position along nsb_gradient_angle, R the camera radius (clipped at 0)",
    ).tag(config=True)
    nsb_gradient_angle = Float(
        0.0, help="Direction of the background gradient in the telescope frame, deg from fov_lon towards fov_lat"
    ).tag(config=True)
    n_stars = Int(
        0,
        min=0,
        help="Bright stars in the field of view, at positions drawn from conditions_seed (uniform over the"
        " largest camera of the subarray, the same sky positions in every telescope)",
    ).tag(config=True)
    star_nsb_pe = Float(
        25.0, min=0.0, help="Extra background of a star in the pixel it falls in, p.e. in the integration window"
    ).tag(config=True)
    star_neighbour_share = Float(
        0.25, min=0.0, max=1.0, help="Share of star_nsb_pe each neighbour of a star's pixel gets"
    ).tag(config=True)
    dead_pixel_fraction = Float(
        0.0, min=0.0, max=1.0, help="Fraction of the pixels of each camera that read zero (charge and peak time)"
    ).tag(config=True)
    hot_pixel_fraction = Float(
        0.0, min=0.0, max=1.0, help="Fraction of the pixels of each camera with a high background (hot_pixel_nsb_pe)"
    ).tag(config=True)
    hot_pixel_nsb_pe = Float(
        50.0, min=0.0, help="Extra background of a hot pixel, p.e. in the integration window"
    ).tag(config=True)
    optical_efficiency_scale = Float(
        1.0,
        min=0.0,
        max=1.0,
        help="Factor on the optical efficiency (dirty mirrors, haze): each p.e. is kept with this probability",
    ).tag(config=True)
    gain_spread = Float(
        0.0, min=0.0, help="Relative sigma of the per-pixel gain left after calibration (fixed per pixel)"
    ).tag(config=True)
    time_offset_spread = Float(
        0.0, min=0.0, help="Sigma of the per-pixel peak-time offset left after calibration, ns (fixed per pixel)"
    ).tag(config=True)
    conditions_seed = Int(
        0,
        min=0,
        help="Seed of the fixed maps (dead and hot pixels, stars, gains, time offsets); give the gamma and"
        " proton files of one observing condition the same one",
    ).tag(config=True)

    @property
    def nominal(self) -> bool:
        """True when every condition is at its nominal (default) value (asked for every image: cached)."""
        if getattr(self, "_nominal", None) is None:
            self._nominal = all(
                getattr(self, name) == self.trait_defaults(name) for name in _UNITS if name != "conditions_seed"
            )
        return self._nominal

    @observe(*_UNITS)
    def _forget_nominal(self, change):
        self._nominal = None

    @property
    def changes_nsb(self) -> bool:
        return (
            self.nsb_scale != 1.0
            or self.nsb_gradient > 0
            or (self.n_stars > 0 and self.star_nsb_pe > 0)
            or (self.hot_pixel_fraction > 0 and self.hot_pixel_nsb_pe > 0)
        )

    def star_positions(self, field_radius):
        """(fov_lon, fov_lat) of the stars, deg, uniform in a disk of ``field_radius`` deg."""
        rng = np.random.default_rng([self.conditions_seed, _MAPS, _STARS])
        r = field_radius * np.sqrt(rng.random(self.n_stars))
        phi = rng.uniform(0.0, 2 * np.pi, self.n_stars)
        return r * np.cos(phi), r * np.sin(phi)

    def camera(self, tel_id, lookup, neighbours, nominal_nsb, field_radius) -> CameraConditions:
        """The maps of telescope ``tel_id``: ``lookup`` its `PixelLookup`, ``neighbours`` its
        sparse neighbour matrix, ``nominal_nsb`` its nominal background (p.e.),
        ``field_radius`` the radius the stars are spread over (deg)."""
        n_pix = lookup.n_pixels
        pick = _picker(self.conditions_seed, tel_id, n_pix)
        dead = pick(_DEAD, self.dead_pixel_fraction, np.zeros(n_pix, dtype=bool))
        hot = pick(_HOT, self.hot_pixel_fraction, dead)
        nsb_rate = None
        if self.changes_nsb:
            x, y = lookup.pix_x, lookup.pix_y
            angle = np.deg2rad(self.nsb_gradient_angle)
            along = (x * np.cos(angle) + y * np.sin(angle)) / np.max(np.hypot(x, y))
            nsb_rate = nominal_nsb * self.nsb_scale * np.maximum(1.0 + self.nsb_gradient * along, 0.0)
            nsb_rate = nsb_rate + self.hot_pixel_nsb_pe * hot + self._star_light(lookup, neighbours, field_radius)
        gain = time_offset = None
        if self.gain_spread > 0:
            rng = np.random.default_rng([self.conditions_seed, _MAPS, _GAIN, tel_id])
            gain = np.maximum(rng.normal(1.0, self.gain_spread, n_pix), 0.0)
        if self.time_offset_spread > 0:
            rng = np.random.default_rng([self.conditions_seed, _MAPS, _TIME, tel_id])
            time_offset = rng.normal(0.0, self.time_offset_spread, n_pix)
        return CameraConditions(
            nsb_rate=nsb_rate,
            dead=dead if dead.any() else None,
            gain=gain,
            time_offset=time_offset,
            efficiency=self.optical_efficiency_scale,
        )

    def _star_light(self, lookup, neighbours, field_radius):
        """Extra background of the stars: star_nsb_pe in each star's pixel, a share of it in its neighbours."""
        light = np.zeros(lookup.n_pixels)
        if self.n_stars == 0:
            return light
        pixel = lookup(*self.star_positions(field_radius))
        pixel = pixel[pixel >= 0]  # stars outside this (smaller) camera
        centre = np.bincount(pixel, minlength=lookup.n_pixels).astype(float)
        light += self.star_nsb_pe * centre
        light += self.star_nsb_pe * self.star_neighbour_share * (neighbours @ centre)
        return light

    def to_table(self, obs_id) -> Table:
        """One row of every condition (with units), as recorded in `CONDITIONS_TABLE`."""
        table = Table({"obs_id": [int(obs_id)]})
        for name, unit in _UNITS.items():
            value = getattr(self, name)
            table[name] = [value] if unit is None else [value] * unit
        table.meta["nominal"] = self.nominal
        return table


def _picker(seed, tel_id, n_pix):
    """``pick(stream, fraction, excluded)``: a fixed set of round(fraction x n_pix) pixels
    outside ``excluded``, drawn from (seed, stream, tel_id)."""

    def pick(stream, fraction, excluded):
        chosen = np.zeros(n_pix, dtype=bool)
        n = int(round(fraction * n_pix))
        candidates = np.flatnonzero(~excluded)
        if n > 0 and len(candidates):
            rng = np.random.default_rng([seed, _MAPS, stream, tel_id])
            chosen[rng.choice(candidates, size=min(n, len(candidates)), replace=False)] = True
        return chosen

    return pick
