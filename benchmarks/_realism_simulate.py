"""Simulated samples for the realism benchmark: run ctapipe-gammalearn-simulate, read the DL1 tables."""

from pathlib import Path

import astropy.units as u
from astropy.table import Table
from ctapipe.core import run_tool
from ctapipe.io import TableLoader

from ctapipe_gammalearn.tools.simulate import SimulateTool

__all__ = ["simulated_images"]


def simulated_images(
    cache_dir, name, particle, n_events, seed, extra=(), overwrite=False, pointing=False, telescopes=None
):
    """Telescope-event table (parameters + truth) of a simulated sample, cached as a DL1 file;
    ``telescopes``: the telescope ids or types to read (all by default).

    The parameters of the true p.e. images come along with a ``true_`` prefix."""
    path = Path(cache_dir) / f"{name}.dl1.h5"
    if overwrite or not path.exists():
        argv = [
            f"--particle={particle}",
            f"--n-events={n_events}",
            f"--seed={seed}",
            f"--output={path}",
            "--overwrite",
            "--no-progress",
            *extra,
        ]
        if run_tool(SimulateTool(), argv=argv) != 0:
            raise RuntimeError(f"simulation of {name} failed")
    with TableLoader(path) as loader:
        table = loader.read_telescope_events(
            telescopes,
            dl1_parameters=True, simulated=True, observation_info=False, pointing=pointing, true_parameters=True
        )
    table = Table(table)
    for name in (
        "hillas_width", "hillas_length", "hillas_r", "hillas_fov_lon", "hillas_fov_lat", "true_alt", "true_az",
        "true_hillas_width", "true_hillas_length",
    ):
        table[name] = u.Quantity(table[name], u.deg).to_value(u.deg)
    return table

