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


def matmul_peak_gflops(dtype=None, n=1024, repeats=5):
    """Best-of-``repeats`` square matmul rate of torch on this CPU, GFLOP/s (float32 by default)."""
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        times.append((time.perf_counter() - start) / 4)
    return 2 * n**3 / min(times) / 1e9
