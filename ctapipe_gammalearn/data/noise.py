"""Per-pixel night-sky noise of a DL1 run, in p.e., beside the simulator's nominal noise.

Two estimates, the first that the file allows:

``pedestal``
    lstchain's calibration monitoring (``/dl1/event/telescope/monitoring``): the
    standard deviation of the pedestal charge per pixel and gain (``charge_std``,
    ADC counts, integrated with the unbiased pedestal extractor) times the calibration
    ``dc_to_pe`` of the calibration it belongs to. Row 0 of the pedestal table comes
    from the calibration run, rows 1... from the run's own interleaved pedestal events,
    so they carry the sky's noise: those are averaged (row 0 only when there is no
    other), as in lstchain (``calib/camera/pixel_threshold_estimation.py``,
    ``image/modifier.py``). Pixels flagged unusable are NaN.
``images``
    the charges of the run's images away from any light: sky-pedestal events when the
    file has some, else the pixels of shower events outside the cleaning mask
    (`~ctapipe_gammalearn.io.LSTChainImageCleaner`) and two rows of neighbours around
    it. Calibration events (flat field) are skipped. Its per-pixel values come from
    as many events as the file has; the camera median is the robust figure.

Both are the noise of one pixel's charge, comparable to the simulator's nominal
``sqrt(nsb_pe + electronic_noise_pe**2)`` (`nominal_simulator_noise`). The pedestal
extractor is unbiased; the image extractor (lstchain: LocalPeakWindowSum) is biased
towards upward fluctuations, so the images estimate is not the same quantity exactly.
"""

import contextlib

import numpy as np
import tables
from ctapipe.io import TableLoader, read_table
from ctapipe.io.hdf5dataformat import DL1_TEL_TRIGGER_TABLE

from ..io.lstchain import MONITORING_GROUP, PARAMETERS_GROUP, LSTChainDL1File
from ..io.lstchain_cleaning import LSTChainImageCleaner
from .inputs import LSTCHAIN, dl1_format

__all__ = ["estimate_pixel_noise", "nominal_simulator_noise", "PEDESTAL", "IMAGES"]

PEDESTAL = "pedestal"
IMAGES = "images"
HIGH_GAIN, LOW_GAIN = 0, 1
#: ctapipe EventType values: flat field, single p.e., sky / dark / electronic pedestal
_CALIBRATION_TYPES = (0, 1, 2, 3, 4)
_SKY_PEDESTAL = 2


def nominal_simulator_noise() -> dict:
    """The simulator's default noise per pixel (`~ctapipe_gammalearn.simulation.detector.DetectorResponse`).

    ``nsb_pe`` (mean NSB p.e. in the integration window, Poisson), ``electronic_noise_pe``
    (Gaussian sigma) and the resulting charge standard deviation ``pixel_std_pe``.
    """
    from ..simulation.detector import DetectorResponse

    traits = DetectorResponse.class_traits()
    nsb = _default(traits["nsb_pe"])
    electronic = _default(traits["electronic_noise_pe"])
    return {"nsb_pe": nsb, "electronic_noise_pe": electronic, "pixel_std_pe": float(np.sqrt(nsb + electronic**2))}


def _default(trait):
    """The '*' value of a TelescopeParameter's default (a list of (kind, pattern, value))."""
    value = trait.default()
    if not isinstance(value, (int, float)):
        value = next(v for _, pattern, v in value if pattern == "*")
    return float(value)


def estimate_pixel_noise(path, tel_id=None, method=None, chunk_size=2000):
    """Per-pixel charge standard deviation of a run, in p.e., and a summary.

    Parameters
    ----------
    path : path-like
        lstchain or ctapipe DL1 file
    tel_id : int or None
        the telescope (default: the first with monitoring or images)
    method : None, ``"pedestal"`` or ``"images"``
        None: the pedestal monitoring where the file has it, else the images

    Returns
    -------
    pixel_std : np.ndarray, (n_pixels,) float64
        p.e.; NaN for unusable pixels or pixels without samples
    summary : dict
        ``method``, ``tel_id``, ``median_pe``, ``p16_pe``, ``p84_pe``, ``n_pixels``
        (with a value), ``n_samples`` (pedestal events or images used), ``nominal``
        (`nominal_simulator_noise`), ``ratio_to_nominal`` (median over nominal), and for
        ``pedestal`` also the low gain's median and the calibration run's
    """
    lstchain = dl1_format(path) == LSTCHAIN  # a one-line DL1InputError for anything else
    with tables.open_file(path, "r") as h5:
        has_monitoring = lstchain and f"{MONITORING_GROUP}/pedestal" in h5 and f"{MONITORING_GROUP}/calibration" in h5
    if method is None:
        method = PEDESTAL if has_monitoring else IMAGES
    if method == PEDESTAL:
        if not has_monitoring:
            raise ValueError(f"{path}: no lstchain pedestal monitoring ({MONITORING_GROUP}/pedestal)")
        pixel_std, extra = _from_pedestals(path, tel_id)
    elif method == IMAGES:
        pixel_std, extra = _from_images(path, tel_id, lstchain, chunk_size)
    else:
        raise ValueError(f"unknown noise estimate {method!r}: use {PEDESTAL!r} or {IMAGES!r}")
    nominal = nominal_simulator_noise()
    summary = {"method": method, **extra, **_stats(pixel_std), "nominal": nominal}
    summary["ratio_to_nominal"] = summary["median_pe"] / nominal["pixel_std_pe"]
    return pixel_std, summary


def _stats(values):
    good = values[np.isfinite(values)]
    if len(good) == 0:
        return {"median_pe": np.nan, "p16_pe": np.nan, "p84_pe": np.nan, "n_pixels": 0}
    p16, median, p84 = np.percentile(good, [16, 50, 84])
    return {"median_pe": float(median), "p16_pe": float(p16), "p84_pe": float(p84), "n_pixels": int(len(good))}


def _from_pedestals(path, tel_id):
    with tables.open_file(path, "r") as h5:
        pedestal = h5.get_node(f"{MONITORING_GROUP}/pedestal").read()
        calibration = h5.get_node(f"{MONITORING_GROUP}/calibration").read()
    if tel_id is None:
        tel_id = int(pedestal["tel_id"][0])
    pedestal = pedestal[pedestal["tel_id"] == tel_id]
    calibration = calibration[calibration["tel_id"] == tel_id]
    if len(pedestal) == 0:
        raise ValueError(f"{path}: no pedestal monitoring for telescope {tel_id}")
    by_id = {int(c): row for row, c in enumerate(calibration["calibration_id"])}
    # ADC -> p.e. with the calibration each pedestal row belongs to
    calibration_rows = [by_id[int(c)] for c in pedestal["calibration_id"]]
    std_pe = pedestal["charge_std"] * calibration["dc_to_pe"][calibration_rows]
    unusable = calibration["unusable_pixels"][calibration_rows]
    std_pe = np.where(unusable, np.nan, std_pe)
    rows = np.arange(1, len(pedestal)) if len(pedestal) > 1 else np.arange(1)
    with np.errstate(invalid="ignore"):
        per_gain = np.nanmean(std_pe[rows], axis=0) if len(rows) > 1 else std_pe[rows[0]]
    per_gain = np.where(unusable[rows].any(axis=0), np.nan, per_gain)
    extra = {
        "tel_id": tel_id,
        "source": "interleaved pedestal events" if len(pedestal) > 1 else "calibration run pedestals",
        "n_samples": int(np.sum(pedestal["n_events"][rows])),
        "low_gain_median_pe": _stats(per_gain[LOW_GAIN])["median_pe"],
        "calibration_run_median_pe": _stats(std_pe[0, HIGH_GAIN])["median_pe"],
    }
    return per_gain[HIGH_GAIN].astype(np.float64), extra


@contextlib.contextmanager
def _image_chunks(path, tel_id, lstchain, chunk_size):
    """``(subarray, tel_id, event_types, chunks)``: one telescope's event types, and a
    generator of its telescope-event tables with images, read ``chunk_size`` at a time."""
    if lstchain:
        with LSTChainDL1File(path) as source:
            subarray = source.subarray
            tel_id = tel_id if tel_id is not None else source.tel_ids[0]
            telescope_type = str(subarray.tel[tel_id])
            node = source.h5file.get_node(f"{PARAMETERS_GROUP}/{source.table_name(telescope_type)}")
            ids = node.col("tel_id")
            types = node.col("event_type")[ids == tel_id] if "event_type" in node.colnames else np.full(len(ids), 32)
            chunks = (
                t[np.asarray(t["tel_id"]) == tel_id]
                for t in source.iter_chunks(telescope_type, chunk_size, images=True, simulated=False)
            )
            yield subarray, tel_id, types, chunks
        return
    with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
        subarray = loader.subarray
        tel_id = tel_id if tel_id is not None else int(sorted(subarray.tel)[0])
        trigger = read_table(loader.h5file, DL1_TEL_TRIGGER_TABLE)
        types = np.asarray(trigger["event_type"])[np.asarray(trigger["tel_id"]) == tel_id]
        options = dict(dl1_images=True, dl1_parameters=False, simulated=False, true_images=False,
                       true_parameters=False, instrument=False, pointing=False, observation_info=False)
        chunks = (t for _, _, t in loader.read_telescope_events_chunked(chunk_size, telescopes=[tel_id], **options))
        yield subarray, tel_id, types, chunks


def _from_images(path, tel_id, lstchain, chunk_size):
    with _image_chunks(path, tel_id, lstchain, chunk_size) as (subarray, tel_id, event_types, chunks):
        geometry = subarray.tel[tel_id].camera.geometry
        cleaner = LSTChainImageCleaner(subarray)
        neighbours = geometry.neighbor_matrix
        n_pix = geometry.n_pixels
        total, total2, count = np.zeros(n_pix), np.zeros(n_pix), np.zeros(n_pix)
        use_pedestals = bool(np.any(np.asarray(event_types) == _SKY_PEDESTAL))
        n_used = 0
        for table in chunks:
            types = np.asarray(table["event_type"]) if "event_type" in table.colnames else np.full(len(table), 32)
            for row in range(len(table)):
                wanted = types[row] == _SKY_PEDESTAL if use_pedestals else types[row] not in _CALIBRATION_TYPES
                if not wanted:
                    continue
                image = np.asarray(table["image"][row], np.float64)
                if use_pedestals:
                    dark = np.isfinite(image)
                else:
                    mask = cleaner(tel_id, image, np.asarray(table["peak_time"][row], np.float64))
                    for _ in range(2):  # two rows of neighbours: the shower's faint halo
                        mask = mask | (neighbours @ mask)
                    dark = ~mask & np.isfinite(image)
                total[dark] += image[dark]
                total2[dark] += image[dark] ** 2
                count[dark] += 1
                n_used += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        variance = (total2 - count * mean**2) / (count - 1)
    pixel_std = np.where(count >= 2, np.sqrt(np.maximum(variance, 0)), np.nan)
    source = "sky-pedestal events" if use_pedestals else "shower events, pixels outside the cleaning mask"
    return pixel_std, {"tel_id": tel_id, "source": source, "n_samples": n_used}
