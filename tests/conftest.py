"""Shared fixtures. Real reference files live in ../shared/data and are never copied here."""

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import pytest

# numba writes its caches beside the installed sources; two test workers compiling the same
# cached function at once can leave an index and cache files that do not match, and the
# next process that loads them crashes (seen with ctapipe's adaptive_centroid gufunc). Each
# worker, with the processes it starts, gets a cache directory of its own. Set before any
# import of numba.
if "NUMBA_CACHE_DIR" not in os.environ or os.environ.get("GAMMALEARN_TEST_NUMBA_CACHE"):
    # (the xdist workers inherit the controller's choice: the marker lets them replace it)
    os.environ["GAMMALEARN_TEST_NUMBA_CACHE"] = "1"
    os.environ["NUMBA_CACHE_DIR"] = str(
        Path(tempfile.gettempdir())
        / "ctapipe_gammalearn-numba"
        / f"{hashlib.sha1(sys.prefix.encode()).hexdigest()[:8]}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    )

SHARED_DATA = Path(
    os.environ.get("GAMMALEARN_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)

if (SHARED_DATA / "camgeom").is_dir():
    # lets CameraGeometry.from_name work offline
    os.environ.setdefault("CTAPIPE_SVC_PATH", str(SHARED_DATA / "camgeom"))


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; skips the test where the real files are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (set GAMMALEARN_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def lst1_subarray():
    """The real LST-1 subarray (LSTCam geometry and optics) from ctapipe_io_lst, offline."""
    from ctapipe_io_lst import LSTEventSource

    return LSTEventSource.create_subarray(tel_id=1)


@pytest.fixture(scope="module")
def single_torch_thread():
    """Small tensors on a shared 2-core machine: one thread is many times faster
    than two competing for the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
