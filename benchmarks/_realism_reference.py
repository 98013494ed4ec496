"""Real reference numbers for the simulation realism benchmark (read from ../shared/data)."""

import os
import re
from pathlib import Path

import numpy as np
import tables
from astropy.table import Table

__all__ = [
    "SHARED_DATA", "height_in_us_standard", "prod5_lst_images", "prod5_lst_tables", "lst1_performance", "LST1_AUC",
    "LST_FOCAL_LENGTH",
]

SHARED_DATA = Path(os.environ.get("GAMMALEARN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
#: prod5 LST Hillas lengths are in metres in the camera frame
LST_FOCAL_LENGTH = 28.0
#: LST-1 gamma/hadron AUC per intensity bin (MC gammas vs real OFF data), lst1_performance/README.md
LST1_AUC = {(80, 200): 0.75, (200, 800): 0.87, (800, 3200): 0.98}


#: CORSIKA's US standard atmosphere, five layers: (lower edge km, a g/cm2, b g/cm2, c km), T = a + b exp(-h/c)
#: (the last one linear: T = a - b h / c); prod5 La Palma used a site profile close to it
US_STANDARD_LAYERS = [
    (0.0, -186.555305, 1222.6562, 9.9418638),
    (4.0, -94.919, 1144.9069, 8.7815355),
    (10.0, 0.61289, 1305.5948, 6.3614304),
    (40.0, 0.0, 540.1778, 7.7217016),
    (100.0, 0.01128292, 1.0, 1.0e4),
]


def height_in_us_standard(vertical_depth):
    """Height (km a.s.l.) of a vertical depth (g/cm2) in the US standard atmosphere: puts
    prod5's CORSIKA depths on the simulator's height scale (its atmosphere is exponential)."""
    depth = np.asarray(vertical_depth, dtype=float)
    height = np.full(depth.shape, np.nan)
    uppers = [layer[0] for layer in US_STANDARD_LAYERS[1:]] + [112.8]
    for (lower, a, b, c), upper in zip(US_STANDARD_LAYERS, uppers):
        if lower < 100.0:
            h = -c * np.log(np.clip((depth - a) / b, 1e-300, None))
        else:
            h = (a - depth) * c / b
        inside = (h >= lower) & (h < upper) & np.isnan(height)
        height[inside] = h[inside]
    return height


def _impact(core_x, core_y, tel_x, tel_y, tel_z, alt, az):
    """Distance of the telescope from the shower axis, m (alt, az in rad; the files' are in deg)."""
    axis = np.stack([np.cos(alt) * np.cos(az), -np.cos(alt) * np.sin(az), np.sin(alt)], axis=1)
    rel = np.stack([tel_x - core_x, tel_y - core_y, np.full_like(core_x, tel_z)], axis=1)
    return np.linalg.norm(np.cross(rel, axis), axis=1)


#: the two parameter sets of the prod5 files (ctapipe 0.8 stage 1): Hillas etc. of the cleaned
#: DL1 images (tailcuts 10/5, two neighbours, as ctapipe's default today) and of the true p.e.
#: images (every pixel with a p.e., no noise)
PROD5_GROUPS = {"dl1": "dl1", "true": "simulation"}


def prod5_lst_tables(particle, level="dl1"):
    """Per LST of the prod5 La Palma sample: (layout row, parameter rows, matching shower rows,
    pointing row); ``level`` "dl1" (cleaned images) or "true" (true p.e. images)."""
    name = {"gamma": "aict_cta_gammas_diffuse", "proton": "aict_cta_protons"}[particle]
    group = PROD5_GROUPS[level]
    with tables.open_file(SHARED_DATA / "dl1_params_only" / f"{name}.dl1.h5") as h5:
        layout = h5.root.configuration.instrument.subarray.layout[:]
        shower = h5.root.simulation.event.subarray.shower[:]
        pointing = h5.root.dl1.monitoring.subarray.pointing[0]
        key = {(o, e): i for i, (o, e) in enumerate(zip(shower["obs_id"], shower["event_id"]))}
        for tel in layout[layout["type"] == b"LST"]:
            params = h5.get_node(f"/{group}/event/telescope/parameters/tel_{tel['tel_id']:03d}")[:]
            idx = np.array([key[(o, e)] for o, e in zip(params["obs_id"], params["event_id"])])
            yield tel, params, shower[idx], pointing


def prod5_lst_images(particle, level="dl1"):
    """LST images of the prod5 La Palma sample (zenith 20 deg), lengths converted to deg;
    ``level`` "dl1" (cleaned images) or "true" (true p.e. images)."""
    rows = []
    for tel, params, s, _ in prod5_lst_tables(particle, level):
        t = Table()
        t["hillas_intensity"] = params["hillas_intensity"]
        to_deg = np.rad2deg(1.0 / LST_FOCAL_LENGTH)
        for col in ("width", "length", "r"):
            t[f"hillas_{col}"] = params[f"hillas_{col}"] * to_deg
        for col in ("skewness", "kurtosis"):
            t[f"hillas_{col}"] = params[f"hillas_{col}"]
        for col in ("concentration_cog", "concentration_core", "concentration_pixel",
                    "leakage_intensity_width_1", "leakage_intensity_width_2", "intensity_max", "intensity_std"):
            t[col] = params[col]
        t["morphology_n_pixels"] = params["morphology_num_pixels"]
        t["morphology_n_islands"] = params["morphology_num_islands"]
        t["true_energy"] = s["true_energy"]
        t["true_x_max"] = s["true_x_max"]
        alt, az = np.deg2rad(s["true_alt"]), np.deg2rad(s["true_az"])
        t["true_x_max_height"] = height_in_us_standard(s["true_x_max"] * np.sin(alt))
        t["true_impact_distance"] = _impact(
            s["true_core_x"], s["true_core_y"], tel["pos_x"], tel["pos_y"], 0.0, alt, az
        )
        rows.append(t)
    from astropy.table import vstack

    return vstack(rows)


def lst1_performance(zenith="10.00", gh_efficiency="0.9"):
    """Real LST-1 angular (68%, deg) and energy resolution per true-energy bin (source-independent)."""
    text = (SHARED_DATA / "lst1_performance" / "lst1_irf_tables.txt").read_text().splitlines()
    header = f"===== irfs/irfs_zen_{zenith}_gh-eff_{gh_efficiency}.fits.gz"
    start = text.index(header) + 2
    rows = []
    for line in text[start:]:
        if line.startswith("====="):
            break
        match = re.match(r"\s*([\d.]+)-\s*([\d.]+|inf)\s+\S+\s+(\S+)\s+\S+\s+(\S+)", line)
        if match:
            rows.append(tuple(float(v) for v in match.groups()))
    return Table(rows=rows, names=["energy_min", "energy_max", "angular_resolution", "energy_resolution"])


def simtel_lst_images(particle):
    """LST images of the small sim_telarray files in dl1/ (ctapipe 0.28 default processing)."""
    import warnings

    import astropy.units as u
    from astropy.table import vstack
    from ctapipe.io import TableLoader

    tables_ = []
    for path in sorted((SHARED_DATA / "dl1").glob(f"{particle}__*.dl1.h5")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
                by_type = loader.read_telescope_events_by_type(dl1_parameters=True, simulated=True)
        for tel_type, table in by_type.items():
            if not str(tel_type).startswith("LST"):
                continue
            t = Table()
            for col in ("hillas_width", "hillas_length"):
                t[col] = u.Quantity(table[col], u.deg).to_value(u.deg)
            for col in ("hillas_intensity", "morphology_n_islands", "morphology_n_pixels"):
                t[col] = np.asarray(table[col], dtype=float)
            tables_.append(t)
    return vstack(tables_)
