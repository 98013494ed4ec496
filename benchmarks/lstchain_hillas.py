"""DL1 parameters read from lstchain files against ctapipe's ImageProcessor on the same images.

For each file and cleaning, per parameter: the images both parametrise, how many agree
(relative difference < 1e-6, or absolute < 1e-7 in the column's unit) and the largest
absolute difference. Cleanings: lstchain's (`LSTChainImageCleaner`: tailcuts 8/4 p.e., two
picture neighbours, then 2 ns time-delta cleaning), the same tailcuts without the time
cleaning, and the 6/3 p.e. tailcuts of lstchain 0.7-0.9's standard configuration.

    python benchmarks/lstchain_hillas.py                      # the files of ../shared/data/lstchain_dl1
"""

import argparse
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from traitlets.config import Config

from ctapipe_gammalearn.io import LSTChainDL1File
from ctapipe_gammalearn.io.lstchain_cleaning import image_parameters

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lstchain_dl1"
COLUMNS = {
    "hillas_intensity": None, "hillas_fov_lon": u.deg, "hillas_fov_lat": u.deg, "hillas_r": u.deg,
    "hillas_phi": u.deg, "hillas_length": u.deg, "hillas_width": u.deg, "hillas_psi": u.deg,
    "hillas_skewness": None, "hillas_kurtosis": None, "timing_slope": 1 / u.deg, "timing_intercept": None,
    "leakage_intensity_width_2": None, "leakage_pixels_width_2": None, "concentration_cog": None,
    "concentration_core": None, "concentration_pixel": None, "morphology_n_pixels": None,
    "morphology_n_islands": None,
}
CLEANINGS = {
    "lstchain 8/4 + 2 ns": ("LSTChainImageCleaner", {}),
    "tailcuts 8/4": ("TailcutsImageCleaner", {"picture_threshold_pe": 8.0, "boundary_threshold_pe": 4.0}),
    "tailcuts 6/3": ("TailcutsImageCleaner", {"picture_threshold_pe": 6.0, "boundary_threshold_pe": 3.0}),
}


def recompute(subarray, table, cleaner, options):
    config = Config({cleaner: {"min_picture_neighbors": 2, **options}})
    return image_parameters(subarray, table, cleaner, config)


def values(column, unit, table=None, rows=None):
    if table is not None:
        data = table[column]
        return u.Quantity(data).to_value(unit) if unit is not None else np.asarray(data, float)
    return np.array([u.Quantity(r[column]).to_value(unit) if unit is not None else r[column] for r in rows], float)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=sorted(SHARED.glob("*.h5")))
    args = parser.parse_args()
    for path in args.files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with LSTChainDL1File(path) as source:
                names = source.table_names
                table = source.read(source.telescope_type(names[0]))
                subarray = source.subarray
                version = source.lstchain_version or "not recorded"
            results = {name: recompute(subarray, table, *spec) for name, spec in CLEANINGS.items()}
        print(f"\n{path.name}: {len(table)} images, lstchain {version}")
        print(f"{'parameter':27s}" + "".join(f" | {name:>28s}" for name in CLEANINGS))
        for column, unit in COLUMNS.items():
            ours = values(column, unit, table=table)
            cells = []
            for rows in results.values():
                theirs = values(column, unit, rows=rows)
                both = np.isfinite(ours) & np.isfinite(theirs)
                diff = np.abs(ours - theirs)[both]
                agree = diff <= np.maximum(1e-6 * np.abs(ours[both]), 1e-7)
                largest = f"{diff.max():.2g}" if len(diff) else "-"
                cells.append(f"{int(agree.sum()):3d}/{int(both.sum()):2d} agree, max {largest:>8s}")
            print(f"{column:27s}" + "".join(f" | {cell:>28s}" for cell in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
