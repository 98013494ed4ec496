"""The few places where supported ctapipe versions (0.28 to 0.32) differ."""

from importlib.metadata import version

from packaging.version import Version

__all__ = [
    "CTAPIPE_VERSION",
    "particle_type_key",
    "PARTICLE_TYPE_KEY",
    "particle_type_map",
    "telescope_pointing",
]

CTAPIPE_VERSION = Version(version("ctapipe"))


def particle_type_key(ctapipe_version: Version = CTAPIPE_VERSION) -> str:
    """Name of the DL2 particle-type container/group: renamed in ctapipe 0.29."""
    return "classification" if ctapipe_version < Version("0.29") else "particle_type"


#: key of ``event.dl2.tel[i]`` / ``event.dl2.stereo`` and of the HDF5 group
#: ``/dl2/event/{telescope,subarray}/<key>`` for gammaness
PARTICLE_TYPE_KEY = particle_type_key()


def particle_type_map(reconstructed):
    """The particle-type map of ``event.dl2.tel[i]`` or ``event.dl2.stereo``."""
    return getattr(reconstructed, PARTICLE_TYPE_KEY)


def telescope_pointing(event, tel_id):
    """(altitude, azimuth) of a telescope for this event, as astropy quantities.

    ctapipe 0.28 keeps it in ``event.monitoring.tel[i].pointing``; older layouts
    used ``event.pointing.tel[i]``.
    """
    monitoring = getattr(event, "monitoring", None)
    if monitoring is not None and hasattr(monitoring.tel[tel_id], "pointing"):
        pointing = monitoring.tel[tel_id].pointing
    else:
        pointing = event.pointing.tel[tel_id]
    return pointing.altitude, pointing.azimuth
