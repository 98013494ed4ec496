"""Network outputs -> DL2 quantities.

The one code path shared by the per-event `~ctapipe_gammalearn.reco` and the
batched ``ctapipe-apply-gammalearn``: pure functions over arrays, astropy
units at the boundary, no torch.
"""

import astropy.units as u
import numpy as np
from astropy.table import Table
from ctapipe.containers import (
    ParticleClassificationContainer,
    ReconstructedEnergyContainer,
    ReconstructedGeometryContainer,
)
from ctapipe.io.hdf5dataformat import DL2_SUBARRAY_GROUP, DL2_TEL_GROUP
from ctapipe.reco.reconstructor import ReconstructionProperty
from ctapipe.reco.utils import add_defaults_and_meta

from .compat import PARTICLE_TYPE_KEY
from .modelcard import GAMMA_CLASS_INDEX
from .targets import fov_offset_to_altaz, log10_energy_sigma_to_energy_uncert, target_to_energy

__all__ = [
    "ENERGY_PREFIX",
    "CLASSIFIER_PREFIX",
    "GEOMETRY_PREFIX",
    "PREFIXES",
    "CONTAINERS",
    "gammaness",
    "energy_and_uncert",
    "direction_and_uncert",
    "core_and_uncert",
    "dl2_columns",
    "columns_to_table",
    "columns_to_container",
    "dl2_group",
]

ENERGY_PREFIX = "GammaPhysNetEnergy"
CLASSIFIER_PREFIX = "GammaPhysNetClassifier"
GEOMETRY_PREFIX = "GammaPhysNetGeometry"

#: one prefix per property, so TableLoader(dl2=True) joins them without collisions
PREFIXES = {
    ReconstructionProperty.ENERGY: ENERGY_PREFIX,
    ReconstructionProperty.PARTICLE_TYPE: CLASSIFIER_PREFIX,
    ReconstructionProperty.GEOMETRY: GEOMETRY_PREFIX,
}
CONTAINERS = {
    ReconstructionProperty.ENERGY: ReconstructedEnergyContainer,
    ReconstructionProperty.PARTICLE_TYPE: ParticleClassificationContainer,
    ReconstructionProperty.GEOMETRY: ReconstructedGeometryContainer,
}


def _sigma(logvar):
    """Standard deviation from a natural-log variance."""
    return np.exp(0.5 * np.asarray(logvar, dtype=np.float64))


def gammaness(class_logits, gamma_index=GAMMA_CLASS_INDEX):
    """Softmax probability of the gamma class, (n,) float64."""
    logits = np.asarray(class_logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)  # overflow-safe softmax
    prob = np.exp(shifted)
    return prob[:, gamma_index] / prob.sum(axis=1)


def energy_and_uncert(log10_energy, log10_energy_logvar):
    """Energy and its first-order uncertainty, both in TeV."""
    sigma = _sigma(log10_energy_logvar)
    return (
        target_to_energy(log10_energy),
        log10_energy_sigma_to_energy_uncert(log10_energy, sigma).to(u.TeV),
    )


@u.quantity_input(pointing_alt=u.deg, pointing_az=u.deg)
def direction_and_uncert(fov_offset, fov_offset_logvar, pointing_alt, pointing_az):
    """Sky direction from the telescope-frame offset, with uncertainties.

    alt/az uncertainties are the telescope-frame sigmas mapped to first order
    (exact near the camera centre); ``ang_distance_uncert`` is the rms angular
    distance, sqrt(sigma_lon^2 + sigma_lat^2).
    """
    offset = np.asarray(fov_offset, dtype=np.float64)
    sigma = _sigma(fov_offset_logvar)
    alt, az = fov_offset_to_altaz(
        offset[:, 0] * u.deg, offset[:, 1] * u.deg, pointing_alt, pointing_az
    )
    # plain Quantities: Latitude/Longitude refuse NaN assignment
    alt = u.Quantity(alt.to_value(u.deg), u.deg)
    az = u.Quantity(az.to_value(u.deg), u.deg)
    with np.errstate(divide="ignore", invalid="ignore"):
        az_uncert = sigma[:, 0] / np.cos(alt.to_value(u.rad))
    return {
        "alt": alt,
        "az": az,
        "alt_uncert": u.Quantity(sigma[:, 1], u.deg),
        "az_uncert": u.Quantity(az_uncert, u.deg),
        "ang_distance_uncert": u.Quantity(np.hypot(sigma[:, 0], sigma[:, 1]), u.deg),
    }


@u.quantity_input(tel_x=u.m, tel_y=u.m)
def core_and_uncert(impact, impact_logvar, tel_x, tel_y):
    """Ground-frame core position (telescope position + predicted impact)."""
    impact = np.asarray(impact, dtype=np.float64)
    sigma = _sigma(impact_logvar)
    return {
        "core_x": (tel_x + impact[:, 0] * u.m).to(u.m),
        "core_y": (tel_y + impact[:, 1] * u.m).to(u.m),
        "core_uncert_x": u.Quantity(sigma[:, 0], u.m),
        "core_uncert_y": u.Quantity(sigma[:, 1], u.m),
    }


def _broadcast(quantity, n):
    quantity = u.Quantity(quantity)
    return u.Quantity(np.broadcast_to(quantity.value, (n,)), quantity.unit)


def _finite_rows(*arrays):
    ok = True
    for array in arrays:
        array = np.asarray(array)
        per_row = int(np.prod(array.shape[1:]))  # not -1: zero rows must work too
        ok = ok & np.isfinite(array.reshape(len(array), per_row)).all(axis=1)
    return ok


def _invalidate(columns, valid):
    if not valid.all():  # Quantity assignment is slow: the per-event path skips it when it can
        for name, values in columns.items():
            values[~valid] = np.nan * getattr(values, "unit", 1)
    columns["is_valid"] = valid.copy()
    return columns


def dl2_columns(
    outputs,
    valid,
    pointing_alt,
    pointing_az,
    tel_x,
    tel_y,
    gamma_index=GAMMA_CLASS_INDEX,
):
    """DL2 fields per property for n telescope events.

    Parameters
    ----------
    outputs : dict[str, np.ndarray]
        network outputs (see `ctapipe_gammalearn.modelcard.OUTPUTS`), n rows
    valid : np.ndarray of bool
        rows that were predicted (model present, quality query passed)
    pointing_alt, pointing_az, tel_x, tel_y : Quantity, scalar or (n,)

    Returns
    -------
    dict[ReconstructionProperty, dict[str, array]]
        container field name -> values; rows that are not valid or whose
        outputs are not finite are NaN with ``is_valid`` False
    """
    valid = np.asarray(valid, dtype=bool)
    n = len(valid)

    energy, energy_uncert = energy_and_uncert(
        outputs["log10_energy"], outputs["log10_energy_logvar"]
    )
    energy_ok = valid & _finite_rows(outputs["log10_energy"], outputs["log10_energy_logvar"])
    energy_columns = _invalidate(
        {"energy": energy, "energy_uncert": energy_uncert}, energy_ok
    )

    score = gammaness(outputs["class_logits"], gamma_index)
    class_ok = valid & np.isfinite(score)
    class_columns = _invalidate({"prediction": score}, class_ok)

    pointing_alt = _broadcast(pointing_alt, n)
    pointing_az = _broadcast(pointing_az, n)
    geometry = direction_and_uncert(
        outputs["fov_offset"], outputs["fov_offset_logvar"], pointing_alt, pointing_az
    )
    geometry.update(
        core_and_uncert(
            outputs["impact"],
            outputs["impact_logvar"],
            _broadcast(tel_x, n),
            _broadcast(tel_y, n),
        )
    )
    geometry_ok = (
        valid
        & _finite_rows(outputs["fov_offset"], outputs["fov_offset_logvar"])
        & np.isfinite(pointing_alt)
        & np.isfinite(pointing_az)
    )
    # the core is an extra: its failure must not invalidate the direction
    core_bad = ~_finite_rows(outputs["impact"], outputs["impact_logvar"])
    if core_bad.any():
        for name in ("core_x", "core_y", "core_uncert_x", "core_uncert_y"):
            geometry[name][core_bad] = np.nan
    geometry_columns = _invalidate(geometry, geometry_ok)

    return {
        ReconstructionProperty.ENERGY: energy_columns,
        ReconstructionProperty.PARTICLE_TYPE: class_columns,
        ReconstructionProperty.GEOMETRY: geometry_columns,
    }


def columns_to_table(prop, columns):
    """Telescope-wise DL2 table ``<prefix>_tel_<field>`` like ctapipe's ``predict_table``."""
    prefix = PREFIXES[prop]
    table = Table({f"{prefix}_tel_{name}": values for name, values in columns.items()})
    add_defaults_and_meta(table, CONTAINERS[prop], prefix=prefix, add_tel_prefix=True)
    return table


def columns_to_container(prop, columns, row):
    """One row of `dl2_columns` as the ctapipe container, prefix ``<prefix>_tel``."""
    values = {name: value[row] for name, value in columns.items()}
    values["is_valid"] = bool(values["is_valid"])
    container = CONTAINERS[prop](**values)
    container.prefix = f"{PREFIXES[prop]}_tel"
    return container


def dl2_group(prop, telescope):
    """HDF5 group of a property's tables, where ctapipe-process writes them.

    ``/dl2/event/telescope/<property>/<prefix>`` (one ``tel_NNN`` table per
    telescope) or ``/dl2/event/subarray/<property>/<prefix>``; the particle-type
    group is ``classification`` before ctapipe 0.29.
    """
    name = PARTICLE_TYPE_KEY if prop is ReconstructionProperty.PARTICLE_TYPE else str(prop)
    return f"{DL2_TEL_GROUP if telescope else DL2_SUBARRAY_GROUP}/{name}/{PREFIXES[prop]}"
