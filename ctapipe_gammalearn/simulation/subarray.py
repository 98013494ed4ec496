"""The subarray to simulate: LST-1 by default, or the one stored in a ctapipe file."""

from ctapipe.core import ToolConfigurationError
from ctapipe.instrument import FocalLengthKind, SubarrayDescription

__all__ = ["load_subarray", "lst1_subarray"]


def lst1_subarray():
    """The real LST-1 (LSTCam geometry and optics) as ctapipe_io_lst describes it, offline."""
    from ctapipe_io_lst import LSTEventSource

    return LSTEventSource.create_subarray(tel_id=1)


def load_subarray(path=None):
    """LST-1, or the subarray of a ctapipe HDF5 file (older files lack the effective focal length)."""
    if path is None:
        return lst1_subarray()
    try:
        return SubarrayDescription.read(path)
    except (ValueError, RuntimeError):
        pass
    try:
        return SubarrayDescription.read(path, focal_length_choice=FocalLengthKind.EQUIVALENT)
    except Exception as err:
        raise ToolConfigurationError(f"{path}: cannot read a subarray description ({err})") from err
