"""Simulating (and processing) batches of showers in several processes.

Every batch has its own random stream (`AirShowerSimEventSource.simulate_batch`), so the
events, their order and the thrown-shower counts do not depend on the number of processes.
"""

import itertools
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

try:  # ctapipe's robust timing fit draws from this one module-level generator
    from ctapipe.fitting import FIT_RNG
except ImportError:  # pragma: no cover - other ctapipe versions
    FIT_RNG = None

__all__ = ["ParallelSimulation", "available_cores", "process_batch"]

# what forked workers run: set while the workers start, inherited by the fork
_WORK = None


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def process_batch(source, process, index):
    """Batch ``index`` of ``source``, its events passed through ``process``.

    ctapipe's timing fit (least trimmed squares from random starts) draws from a generator
    shared by the whole process, so its results would depend on which batches the process
    ran before; it gets a state of its own per batch instead, from (seed, index).
    """
    batch = source.simulate_batch(index)
    if process is not None:
        if FIT_RNG is not None:
            FIT_RNG.bit_generator.state = np.random.default_rng([source.seed, index, 1]).bit_generator.state
        for _, event in batch.events:
            process(event)
    return batch


def _one_thread_each():
    # ctapipe's fits call BLAS on tiny matrices: one thread per worker, or two workers'
    # BLAS threads spin against each other on the same cores
    threadpool_limits(1)


def _run_batch(index):
    source, process = _WORK
    return process_batch(source, process, index)


class ParallelSimulation:
    """Iterates over the events of ``source``, each passed through ``process(event)``
    (e.g. ctapipe's ImageProcessor and ShowerProcessor), with the batches simulated and
    processed by ``n_workers`` forked processes; ``n_workers <= 1`` runs in this process.

    The workers start on ``__enter__`` (before any progress-bar thread), with
    ``prefetch`` batches per worker in flight; this process only numbers the events, so it
    is free to write them.
    """

    def __init__(self, source, process=None, n_workers=1, prefetch=2):
        self.source = source
        self.process = process
        self.n_workers = n_workers if "fork" in multiprocessing.get_all_start_methods() else 1
        self.prefetch = prefetch
        self._executor = None
        self._pending = deque()
        self._next_index = 0

    def __enter__(self):
        global _WORK
        if self.n_workers > 1:
            _WORK = (self.source, self.process)
            try:
                self._executor = ProcessPoolExecutor(
                    self.n_workers, mp_context=multiprocessing.get_context("fork"), initializer=_one_thread_each
                )
                # the first submissions fork every worker
                for _ in range(self.prefetch * self.n_workers):
                    self._submit()
            finally:
                _WORK = None
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._executor is not None:
            # batches already running finish (a few seconds at most), the others are dropped
            self._executor.shutdown(wait=exc_type is None, cancel_futures=True)
            self._executor = None
            self._pending.clear()

    def _submit(self):
        self._pending.append(self._executor.submit(_run_batch, self._next_index))
        self._next_index += 1

    def __iter__(self):
        if self._executor is None:
            batches = (process_batch(self.source, self.process, index) for index in itertools.count())
            yield from self.source.collect(batches)
            return
        yield from self.source.collect(self._batches())

    def _batches(self):
        """Batch results in order, keeping the number of batches in flight constant."""
        while True:
            batch = self._pending.popleft().result()
            self._submit()
            yield batch
