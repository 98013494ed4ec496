"""The per-event path's numpy geometry gives what ctapipe's astropy-frame code gives."""

import astropy.units as u
import numpy as np
import pytest
from ctapipe.containers import (
    ArrayEventContainer,
    HillasParametersContainer,
    ImageParametersContainer,
    ReconstructedGeometryContainer,
)
from ctapipe.reco.preprocessing import telescope_to_horizontal
from ctapipe.reco.reconstructor import ReconstructionProperty
from ctapipe.reco.stereo_combination import StereoMeanCombiner

from ctapipe_gammalearn.stereo import FastStereoMeanCombiner
from ctapipe_gammalearn.targets import altaz_to_fov_offset, fov_offset_to_altaz


def test_fov_offset_to_altaz_matches_ctapipe():
    rng = np.random.default_rng(3)
    n = 500
    lon, lat = rng.uniform(-6, 6, n) * u.deg, rng.uniform(-6, 6, n) * u.deg
    alt0, az0 = rng.uniform(15, 89.5, n) * u.deg, rng.uniform(0, 360, n) * u.deg
    expected_alt, expected_az = telescope_to_horizontal(lon, lat, alt0, az0)
    alt, az = fov_offset_to_altaz(lon, lat, alt0, az0)
    assert u.allclose(alt, expected_alt, atol=1e-9 * u.deg)
    daz = (az - expected_az + 180 * u.deg) % (360 * u.deg) - 180 * u.deg
    assert u.allclose(daz, 0 * u.deg, atol=1e-9 * u.deg)
    assert np.all((az >= 0 * u.deg) & (az < 360 * u.deg))
    back_lon, back_lat = altaz_to_fov_offset(alt, az, alt0, az0)
    assert u.allclose(back_lon, lon, atol=1e-9 * u.deg) and u.allclose(back_lat, lat, atol=1e-9 * u.deg)
    # a NaN prediction stays NaN
    alt, az = fov_offset_to_altaz([np.nan] * u.deg, [0.0] * u.deg, [70.0] * u.deg, [0.0] * u.deg)
    assert np.isnan(alt[0]) and np.isnan(az[0])


def _event(rng, tel_ids, valid, prefix):
    event = ArrayEventContainer()
    for tel_id, ok in zip(tel_ids, valid):
        # directions spread around az 0/360 so that the wrap is exercised
        alt = rng.uniform(68, 72) * u.deg
        az = (rng.uniform(-2, 2) % 360) * u.deg
        event.dl2.tel[tel_id].geometry[prefix] = ReconstructedGeometryContainer(alt=alt, az=az, is_valid=ok)
        hillas = HillasParametersContainer(intensity=float(rng.uniform(50, 5000)))
        event.dl1.tel[tel_id].parameters = ImageParametersContainer(hillas=hillas)
    return event


@pytest.mark.parametrize("weights", ["intensity", "none"])
def test_fast_stereo_mean_matches_ctapipe(weights):
    prefix = "GammaPhysNetGeometry"
    kwargs = dict(property=ReconstructionProperty.GEOMETRY, prefix=prefix, weights=weights)
    ours, theirs = FastStereoMeanCombiner(**kwargs), StereoMeanCombiner(**kwargs)
    rng = np.random.default_rng(5)
    cases = [([1, 2, 3], [True, True, True]), ([1, 2, 3], [True, False, True]), ([2], [True]), ([1, 3], [False, False])]
    for tel_ids, valid in cases:
        event = _event(rng, tel_ids, valid, prefix)
        ours(event)
        mine = event.dl2.stereo.geometry[prefix]
        theirs(event)
        reference = event.dl2.stereo.geometry[prefix]
        assert mine.is_valid == reference.is_valid
        assert list(mine.telescopes) == list(reference.telescopes)
        if not reference.is_valid:
            assert np.isnan(mine.alt) and np.isnan(mine.az)
            continue
        assert u.isclose(mine.alt, reference.alt, atol=1e-9 * u.deg)
        daz = (u.Quantity(mine.az) - u.Quantity(reference.az) + 180 * u.deg) % (360 * u.deg) - 180 * u.deg
        assert abs(daz) < 1e-9 * u.deg
        if len(reference.telescopes) > 1:
            assert u.isclose(mine.ang_distance_uncert, reference.ang_distance_uncert, rtol=1e-6)
        else:
            assert mine.ang_distance_uncert == 0 * u.deg
