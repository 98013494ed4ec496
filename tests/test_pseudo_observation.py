"""Pseudo-observations drawn from weighted Monte Carlo: their observed-path significance
scatters around the expected significance of the simulated observation."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import EarthLocation
from astropy.table import QTable

from ctapipe_gammalearn.evaluation.detection import (
    angular_distance,
    observed_run,
    simulated_observation,
    source_altaz,
)
from ctapipe_gammalearn.evaluation.pseudo import pseudo_observation

LA_PALMA = EarthLocation(lon=-17.8920 * u.deg, lat=28.7615 * u.deg, height=2200 * u.m)
CRAB = (83.633 * u.deg, 22.0145 * u.deg)
POINTING = (70 * u.deg, 180 * u.deg)
WOBBLE = 0.4 * u.deg
N_DRAWS = 20


def _sample(n, rng, gamma):
    """Weighted events at a pointing: point-like gammas 0.4 deg above it, or diffuse background."""
    table = QTable()
    table["event_id"] = np.arange(n)
    table["true_energy"] = 10 ** rng.uniform(-1.5, 1.5, n) * u.TeV
    table["reco_energy"] = table["true_energy"] * np.exp(rng.normal(0, 0.2, n))
    table["pointing_alt"] = np.full(n, POINTING[0].value) * u.deg
    table["pointing_az"] = np.full(n, POINTING[1].value) * u.deg
    if gamma:
        alt, az = np.full(n, (POINTING[0] + WOBBLE).value), np.full(n, POINTING[1].value)
        sigma = 0.1
        table["gammaness"] = rng.beta(5, 2, n)
        table["weight"] = np.full(n, 150.0 / n)  # 150 gammas in the run
    else:  # uniform per solid angle within 3 deg of the pointing
        r = np.degrees(np.arccos(1 - rng.uniform(0, 1 - np.cos(np.radians(3.0)), n)))
        phi = rng.uniform(0, 2 * np.pi, n)
        alt = POINTING[0].value + r * np.cos(phi)
        az = POINTING[1].value + r * np.sin(phi) / np.cos(np.radians(alt))
        sigma = 0.0
        table["gammaness"] = rng.beta(2, 5, n)
        table["weight"] = np.full(n, 60000.0 / n)
    table["true_alt"], table["true_az"] = alt * u.deg, az * u.deg
    dalt, daz = rng.normal(0, sigma, n), rng.normal(0, sigma, n) / np.cos(np.radians(alt))
    table["reco_alt"], table["reco_az"] = (alt + dalt) * u.deg, (az + daz) * u.deg
    return table


@pytest.fixture(scope="module")
def weighted():
    rng = np.random.default_rng(1)
    return _sample(20000, rng, True), _sample(60000, rng, False)


def test_pseudo_events_track_the_source(weighted):
    gammas, protons = weighted
    events, info = pseudo_observation(gammas, [protons], 1 * u.h, LA_PALMA, np.random.default_rng(2))
    assert np.all(np.diff(events["time"].mjd) >= 0)
    assert info["wobble_offset"].to_value(u.deg) == pytest.approx(0.4, abs=1e-6)
    s_alt, s_az = source_altaz(*CRAB, events["time"], LA_PALMA, max_step=None)
    # the source stays at the wobble offset from the pointing
    offset = angular_distance(events["pointing_az"], events["pointing_alt"], s_az, s_alt)
    assert np.allclose(offset.to_value(u.deg), 0.4, atol=1e-3)
    g = events[events["particle"] == 0]
    theta = angular_distance(g["reco_az"], g["reco_alt"], s_az[events["particle"] == 0], s_alt[events["particle"] == 0])
    assert np.median(theta.to_value(u.deg)) < 0.15  # gammas around the source, not the simulated position
    assert abs(len(g) - 150) < 5 * np.sqrt(150)


@pytest.mark.parametrize("kind", ["efficiency", "threshold"])
def test_pseudo_significance_scatters_around_expected(weighted, kind):
    """20 pseudo-runs through the observed path: mean within 1 (the σ of one run) of the
    expected significance of the simulated observation, spread close to 1."""
    gammas, protons = weighted
    rows, details = simulated_observation("m", gammas, protons, observation_time=1 * u.h, kinds=(kind,))
    expected = rows[0]["significance"]
    cuts = details[kind]["cuts"]
    rng = np.random.default_rng(7)
    significances = []
    for _ in range(N_DRAWS):
        events, info = pseudo_observation(gammas, [protons], 1 * u.h, LA_PALMA, rng)
        row, _ = observed_run("m", events, *CRAB, LA_PALMA, cuts, livetime=1 * u.h)
        significances.append(row["significance"])
    mean, spread = np.mean(significances), np.std(significances, ddof=1)
    print(f"{kind}: expected {expected:.2f}, pseudo mean {mean:.2f}, spread {spread:.2f} ({N_DRAWS} draws)")
    assert 3 < expected < 15
    assert abs(mean - expected) < 1.0
    assert 0.5 < spread < 1.6


def test_pseudo_run_file_reads_back_as_observed(weighted, lst1_subarray, tmp_path):
    """A pseudo-run written as DL2 and read by the benchmark's observed path gives the
    counts of the in-memory run: the consistency above holds for the files too."""
    from ctapipe_gammalearn.evaluation.observation import observed_observations
    from ctapipe_gammalearn.evaluation.pseudo import write_pseudo_run

    gammas, protons = weighted
    location = lst1_subarray.reference_location
    rows, details = simulated_observation("M", gammas, protons, observation_time=0.2 * u.h, kinds=("efficiency",))
    cuts = details["efficiency"]["cuts"]
    events, info = pseudo_observation(gammas, [protons], 0.2 * u.h, location, np.random.default_rng(3))
    expected, _ = observed_run("M", events, *CRAB, location, cuts, livetime=0.2 * u.h)
    columns = {"MEnergy_energy": "reco_energy", "MGeometry_alt": "reco_alt", "MGeometry_az": "reco_az",
               "MClassifier_prediction": "gammaness"}
    for name, source in columns.items():
        events[name] = events[source]
    for prefix in ("MEnergy", "MGeometry", "MClassifier"):
        events[f"{prefix}_is_valid"] = np.ones(len(events), bool)
    path = tmp_path / "run.dl2.h5"
    nodes = [("energy", "MEnergy"), ("geometry", "MGeometry"), ("classification", "MClassifier")]
    write_pseudo_run(path, events, info, lst1_subarray, nodes, obs_id=7)
    method = {"gammaness": "MClassifier", "energy": "MEnergy", "geometry": "MGeometry"}
    (row,), _ = observed_observations([path], {"M": method}, *CRAB, {"M": {"efficiency": cuts}})
    assert row["run_ids"] == [7] and row["livetime_h"] == pytest.approx(0.2)
    # the pointing read back is interpolated between 10 s samples: a count or two may move
    assert row["n_on"] == pytest.approx(expected["n_on"], abs=2)
    assert row["n_off"] == pytest.approx(expected["n_off"], abs=3)
    assert row["significance"] == pytest.approx(expected["significance"], abs=0.05)
