"""Batches of showers simulated in forked workers give the events of the serial loop."""

import numpy as np
import pytest

from ctapipe_gammalearn.simulation import AirShowerSimEventSource, source
from ctapipe_gammalearn.simulation.parallel import ParallelSimulation

SETTINGS = dict(particle="gamma", energy_min=0.3, energy_max=3.0, core_max=200.0, viewcone_max=1.0, seed=5)


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(source, "BATCH_SIZE", 6)


def _events(n_workers, n_events=9, process=None):
    src = AirShowerSimEventSource(n_events=n_events, **SETTINGS)
    with ParallelSimulation(src, process, n_workers) as events:
        out = [(e.index.event_id, e.simulation.shower.energy.value, e.dl1.tel[1].image.copy()) for e in events]
    return src, out


def test_workers_give_the_serial_events_and_thrown_counts(small_batches):
    serial_source, serial = _events(1)
    parallel_source, parallel = _events(2)
    assert [e[0] for e in parallel] == list(range(1, 10))
    for a, b in zip(serial, parallel):
        assert a[:2] == b[:2]
        np.testing.assert_array_equal(a[2], b[2])
    assert parallel_source.n_thrown == serial_source.n_thrown > 9
    np.testing.assert_array_equal(
        parallel_source.simulated_shower_distributions[parallel_source.obs_id].histogram,
        serial_source.simulated_shower_distributions[serial_source.obs_id].histogram,
    )


def _fails(event):
    raise ValueError("bad event")


def test_an_error_in_a_worker_reaches_the_caller(small_batches):
    with pytest.raises(ValueError, match="bad event"):
        _events(2, process=_fails)


def test_the_timing_fit_generator_gets_a_state_per_batch(small_batches):
    """ctapipe's timing fit draws from one generator per process: whatever the process ran
    before, the events of a batch must see the same draws."""
    from ctapipe.fitting import FIT_RNG

    from ctapipe_gammalearn.simulation.parallel import process_batch

    src = AirShowerSimEventSource(n_events=3, **SETTINGS)
    runs = []
    for earlier_draws in (0, 17):
        FIT_RNG.random(earlier_draws)
        draws = []
        process_batch(src, lambda event: draws.append(FIT_RNG.random()), index=1)
        runs.append(draws)
    assert len(runs[0]) > 0
    assert runs[0] == runs[1]
