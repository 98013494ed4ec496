"""Checks on the DL1 input files before anything is read or written.

A DL1 file is either ctapipe's or lstchain's (`dl1_format`); everything that takes
DL1 files goes through `read_subarray` and `_check_readable` here and
`cache._read_chunks`, which dispatch on the format.
"""

from pathlib import Path

import tables
from ctapipe.core import ToolConfigurationError
from ctapipe.instrument import SubarrayDescription
from ctapipe.io.hdf5dataformat import (
    DL1_TEL_GROUP,
    DL1_TEL_IMAGES_GROUP,
    DL1_TEL_PARAMETERS_GROUP,
    DL1_TEL_TRIGGER_TABLE,
    SIMULATION_SHOWER_TABLE,
)

from ..io.lstchain import NO_IMAGES_HINT, LSTChainDL1File, is_lstchain_dl1
from ..lattice import fingerprint_fits, geometry_fingerprint

__all__ = [
    "CTAPIPE",
    "LSTCHAIN",
    "DL1InputError",
    "InputFile",
    "dl1_format",
    "read_subarray",
    "resolve_telescope_type",
    "check_inputs",
    "check_target_inputs",
]

#: the DL1 formats `dl1_format` tells apart
CTAPIPE = "ctapipe"
LSTCHAIN = "lstchain"


class DL1InputError(ToolConfigurationError):
    """A DL1 input that cannot be trained on; the message names file and problem."""


class InputFile:
    """One DL1 file and the particle class (index in `modelcard.CLASS_NAMES`) of its events."""

    def __init__(self, path, particle_class: int):
        self.path = Path(path).expanduser().resolve()
        self.particle_class = int(particle_class)

    def key(self) -> str:
        """Identity for the cache: path, size and modification time."""
        stat = self.path.stat()
        return f"{self.path}|{stat.st_size}|{stat.st_mtime_ns}|{self.particle_class}"

    def __repr__(self):
        return f"InputFile({str(self.path)!r}, {self.particle_class})"


def dl1_format(path) -> str:
    """`CTAPIPE` or `LSTCHAIN`; `DL1InputError` for a file that is neither."""
    path = Path(path)
    if not path.is_file():
        raise DL1InputError(f"{path}: no such file")
    try:
        with tables.open_file(path, "r") as h5:
            if is_lstchain_dl1(h5):
                return LSTCHAIN
            if any(node in h5 for node in (DL1_TEL_TRIGGER_TABLE, DL1_TEL_IMAGES_GROUP, DL1_TEL_PARAMETERS_GROUP)):
                return CTAPIPE
    except (tables.HDF5ExtError, OSError) as err:
        raise DL1InputError(f"{path}: not a readable HDF5 file ({err})") from None
    raise DL1InputError(f"{path}: neither ctapipe nor lstchain DL1 (no {DL1_TEL_GROUP} tables)")


def read_subarray(path) -> SubarrayDescription:
    """The file's subarray, camera frames with the effective focal length where known.

    The effective focal length maps camera positions to the sky best (it is
    what `ctapipe.io.SimTelEventSource` uses by default), and the network's
    image moments use those sky positions. Older productions lack it: the
    equivalent focal length then.
    """
    if dl1_format(path) == LSTCHAIN:  # the telescopes with events: lstchain lists the whole production
        with LSTChainDL1File(path, focal_length_choice="EFFECTIVE") as source:
            return source.subarray.select_subarray(source.tel_ids)
    try:
        return SubarrayDescription.from_hdf(path, focal_length_choice="EFFECTIVE")
    except RuntimeError:
        return SubarrayDescription.from_hdf(path, focal_length_choice="EQUIVALENT")


def _check_readable(path: Path, labelled: bool = True):
    if dl1_format(path) == LSTCHAIN:
        with LSTChainDL1File(path) as source:
            if not source.has_images:
                raise DL1InputError(f"{path}: lstchain DL1 without images; {NO_IMAGES_HINT}")
            if labelled and not source.is_simulation:
                raise DL1InputError(f"{path}: no simulated truth (lstchain mc_* columns), cannot make labels")
        return
    try:
        with tables.open_file(path, "r") as h5:
            if DL1_TEL_IMAGES_GROUP not in h5:
                raise DL1InputError(
                    f"{path}: no DL1 images ({DL1_TEL_IMAGES_GROUP} missing); "
                    "run ctapipe-process with --write-images"
                )
            if labelled and SIMULATION_SHOWER_TABLE not in h5:
                raise DL1InputError(f"{path}: no simulated shower table, cannot make labels")
    except (tables.HDF5ExtError, OSError) as err:
        raise DL1InputError(f"{path}: not a readable HDF5 file ({err})") from None


def resolve_telescope_type(subarrays: dict, requested: str | None) -> str:
    """The telescope type to train on: the requested one, or the only one present.

    ``subarrays`` maps path -> SubarrayDescription.
    """
    common = None
    for subarray in subarrays.values():
        types = {str(t) for t in subarray.telescope_types}
        common = types if common is None else common & types
    everywhere = sorted(common or [])
    if requested:
        for path, subarray in subarrays.items():
            if requested not in {str(t) for t in subarray.telescope_types}:
                present = sorted(str(t) for t in subarray.telescope_types)
                raise DL1InputError(
                    f"{path}: telescope type {requested!r} not present (has {', '.join(present)})"
                )
        return requested
    if len(everywhere) == 1:
        return everywhere[0]
    if not everywhere:
        raise DL1InputError("the input files share no telescope type")
    raise DL1InputError(
        f"several telescope types in the inputs, choose one with --telescope-type: {', '.join(everywhere)}"
    )


def check_inputs(inputs, telescope_type=None, labelled=True):
    """Validate the inputs; return ``(telescope_type, geometry, fingerprint)``.

    Every file must have images and (unless ``labelled=False``, for unlabelled
    target-domain files) simulated truth, and every telescope of the chosen
    type, in every file, must have the same camera geometry.
    """
    if not inputs:
        raise DL1InputError("no input files given")
    subarrays = {}
    for item in inputs:
        _check_readable(item.path, labelled)
        subarrays[item.path] = read_subarray(item.path)
    telescope_type = resolve_telescope_type(subarrays, telescope_type)

    reference = None
    for path, subarray in subarrays.items():
        for tel_id in subarray.get_tel_ids_for_type(telescope_type):
            geometry = subarray.tel[tel_id].camera.geometry
            fingerprint = geometry_fingerprint(geometry)
            if reference is None:
                reference = (geometry, fingerprint, path, tel_id)
            elif fingerprint != reference[1]:
                raise DL1InputError(
                    f"{path}: telescope {tel_id} of type {telescope_type} has camera geometry "
                    f"{geometry.name} ({fingerprint}) different from {reference[0].name} "
                    f"({reference[1]}) in {reference[2]}; one network needs one camera layout"
                )
    return telescope_type, reference[0], reference[1]


def check_target_inputs(targets, telescope_type, fingerprint):
    """Unlabelled target-domain files (`InputFile`) for a run on ``telescope_type``.

    Each needs images of that telescope type, seen by the camera layout of the
    training files (``fingerprint``); simulated truth is neither needed nor read.
    Raises `DL1InputError` naming the first file that does not fit.
    """
    for item in targets:
        _, geometry, found = check_inputs([item], telescope_type, labelled=False)
        if not fingerprint_fits(fingerprint, geometry):
            raise DL1InputError(
                f"{item.path}: target camera geometry {geometry.name} ({found}) differs from the training "
                f"files' ({fingerprint}); the target must be seen by the same camera layout"
            )
