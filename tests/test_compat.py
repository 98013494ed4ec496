"""The ctapipe version shim."""

from types import SimpleNamespace

import astropy.units as u
import pytest
from ctapipe.containers import ArrayEventContainer
from packaging.version import Version

from ctapipe_gammalearn.compat import (
    CTAPIPE_VERSION,
    PARTICLE_TYPE_KEY,
    particle_type_key,
    particle_type_map,
    telescope_pointing,
)


@pytest.mark.parametrize(
    "version, key",
    [
        ("0.28.0", "classification"),
        ("0.28.3", "classification"),
        ("0.29.0", "particle_type"),
        ("0.30.1", "particle_type"),
        ("0.32.0", "particle_type"),
    ],
)
def test_particle_type_key_per_version(version, key):
    assert particle_type_key(Version(version)) == key


def test_installed_ctapipe_has_the_container_named_by_the_shim():
    event = ArrayEventContainer()
    assert PARTICLE_TYPE_KEY == particle_type_key(CTAPIPE_VERSION)
    assert PARTICLE_TYPE_KEY in event.dl2.stereo.fields
    assert PARTICLE_TYPE_KEY in event.dl2.tel[1].fields
    assert particle_type_map(event.dl2.tel[1]) is getattr(event.dl2.tel[1], PARTICLE_TYPE_KEY)


def test_telescope_pointing_from_event():
    event = ArrayEventContainer()
    if hasattr(event, "monitoring") and hasattr(event.monitoring.tel[1], "pointing"):
        pointing = event.monitoring.tel[1].pointing
    else:
        pointing = event.pointing.tel[1]
    pointing.altitude = 70 * u.deg
    pointing.azimuth = 10 * u.deg
    assert telescope_pointing(event, 1) == (70 * u.deg, 10 * u.deg)


def test_telescope_pointing_older_layout():
    tel = SimpleNamespace(altitude=60 * u.deg, azimuth=5 * u.deg)
    event = SimpleNamespace(pointing=SimpleNamespace(tel={2: tel}))
    assert telescope_pointing(event, 2) == (60 * u.deg, 5 * u.deg)
