"""DL1 telescope table -> network targets (the labels the loss compares with)."""

import astropy.units as u
import numpy as np

from ..targets import altaz_to_fov_offset, core_to_impact, energy_to_target

__all__ = ["LABEL_COLUMNS", "compute_labels"]

#: columns a telescope-event table needs for labels
LABEL_COLUMNS = (
    "true_energy",
    "true_alt",
    "true_az",
    "true_core_x",
    "true_core_y",
    "pos_x",
    "pos_y",
    "telescope_pointing_altitude",
    "telescope_pointing_azimuth",
)


def _quantity(table, name, unit):
    col = table[name]
    if getattr(col, "unit", None) is None:
        return u.Quantity(np.asarray(col, dtype=np.float64), unit)
    return u.Quantity(col).to(unit)


def compute_labels(table, particle_class: int):
    """Targets for each row of a telescope-event table.

    Returns ``(labels, valid)``: a dict of float32 arrays ``log10_energy (n,)``,
    ``fov_offset (n, 2)`` deg, ``impact (n, 2)`` m, ``particle (n,)`` int8, and
    a mask of rows whose labels are all finite.
    """
    missing = [c for c in LABEL_COLUMNS if c not in table.colnames]
    if missing:
        raise KeyError(f"missing columns {missing}")
    n = len(table)
    energy = _quantity(table, "true_energy", u.TeV)
    with np.errstate(invalid="ignore", divide="ignore"):
        log10_energy = energy_to_target(energy)
    lon, lat = altaz_to_fov_offset(
        _quantity(table, "true_alt", u.deg),
        _quantity(table, "true_az", u.deg),
        _quantity(table, "telescope_pointing_altitude", u.deg),
        _quantity(table, "telescope_pointing_azimuth", u.deg),
    )
    imp_x, imp_y = core_to_impact(
        _quantity(table, "true_core_x", u.m),
        _quantity(table, "true_core_y", u.m),
        _quantity(table, "pos_x", u.m),
        _quantity(table, "pos_y", u.m),
    )
    labels = {
        "log10_energy": log10_energy.astype(np.float32),
        "fov_offset": np.stack([lon.to_value(u.deg), lat.to_value(u.deg)], axis=1).astype(np.float32),
        "impact": np.stack([imp_x.to_value(u.m), imp_y.to_value(u.m)], axis=1).astype(np.float32),
        "particle": np.full(n, particle_class, dtype=np.int8),
    }
    valid = (
        np.isfinite(labels["log10_energy"])
        & np.isfinite(labels["fov_offset"]).all(axis=1)
        & np.isfinite(labels["impact"]).all(axis=1)
    )
    return labels, valid
