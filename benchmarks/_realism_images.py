"""Gallery of simulated and real (sim_telarray) LST images side by side."""

from pathlib import Path

import numpy as np
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import TableLoader
from ctapipe.visualization import CameraDisplay

__all__ = ["plot_gallery"]

REAL = {
    "gamma": "dl1/gamma__test_lasercal_v3.dl1.h5",
    "proton": "dl1/proton__31aa856b_proton_run202_za20deg_azm0deg_North_test_layout_test-prod.dl1.h5",
}


def _lst_images(path, min_intensity=100, focal_length_choice="EFFECTIVE"):
    """(geometry, table sorted by intensity) of the LST images of a file above ``min_intensity``."""
    subarray = SubarrayDescription.from_hdf(path, focal_length_choice=focal_length_choice)
    lst_types = [t for t in subarray.telescope_types if t.optics.size_type.name == "LST"]
    with TableLoader(path, focal_length_choice=focal_length_choice) as loader:
        by_type = loader.read_telescope_events_by_type(dl1_images=True, dl1_parameters=True, simulated=True)
    for tel_type in lst_types:
        table = by_type.get(str(tel_type))
        if table is None:
            continue
        table = table[np.asarray(table["hillas_intensity"]) > min_intensity]
        return tel_type.camera.geometry, table[np.argsort(np.asarray(table["hillas_intensity"]))]
    return None, []


def _spread(table, n):
    """n images spread over the intensity range."""
    return table[np.linspace(0, len(table) - 1, min(n, len(table))).astype(int)] if len(table) else table


def _closest(table, intensities):
    """For each intensity, a different image of ``table`` as close to it as possible (log)."""
    log_i = np.log(np.asarray(table["hillas_intensity"], dtype=float))
    picks = []
    for intensity in intensities:
        d = np.abs(log_i - np.log(intensity))
        d[picks] = np.inf
        picks.append(int(np.argmin(d)))
    return table[picks]


def plot_gallery(shared_data, simulated, output, n=3):
    """Rows: real gamma, simulated gamma, real proton, simulated proton; each simulated image
    has about the intensity of the real one above it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for particle in ("gamma", "proton"):
        geometry, real = _lst_images(Path(shared_data) / REAL[particle], focal_length_choice="EQUIVALENT")
        real = _spread(real, n)
        rows.append((f"sim_telarray {particle}", geometry, real))
        # the simulated images of about the same intensities, for a like-for-like look
        geometry, sim = _lst_images(simulated[particle])
        rows.append((f"simulated {particle}", geometry, _closest(sim, real["hillas_intensity"])))
    fig, axes = plt.subplots(len(rows), n, figsize=(3.2 * n, 3.2 * len(rows)), layout="constrained")
    for r, (label, geometry, table) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_axis_off()
            if geometry is None or c >= len(table):
                continue
            display = CameraDisplay(geometry, image=np.asarray(table["image"][c]), ax=ax, cmap="viridis")
            display.highlight_pixels(np.asarray(table["image_mask"][c]), color="white", linewidth=0.3)
            ax.set_title(
                f"{label}\n{table['hillas_intensity'][c]:.0f} p.e., {table['true_energy'][c]:.2f} TeV", fontsize=8
            )
    fig.savefig(output, dpi=80)
