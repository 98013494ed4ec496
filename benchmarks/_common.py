"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

import time
import warnings

import numpy as np


def lstcam_telescope():
    """The real LST-1 telescope description (ctapipe_io_lst, offline)."""
    from ctapipe_io_lst import LSTEventSource

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LSTEventSource.create_subarray(tel_id=1).tel[1]


def lstcam_lattice():
    from ctapipe_gammalearn.lattice import Lattice

    return Lattice.from_geometry(lstcam_telescope().camera.geometry)


def median_time(fn, repeat, warmup=2):
    """Median wall time of ``fn()`` in seconds, after ``warmup`` calls."""
    times = []
    for i in range(warmup + repeat):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.median(times))
