"""The benchmark's source detection: the simulated observation on point-like gammas at a
wobble offset and diffuse protons, pseudo-observed runs drawn from them, and those runs
through the benchmark's observed path (cuts from the simulated report)."""

import json

import numpy as np
import pytest
import tables
from ctapipe.core import run_tool
from test_benchmark_tool import add_dl2

from ctapipe_gammalearn.evaluation.observation import CUTS_FILE, read_cuts
from ctapipe_gammalearn.evaluation.writer import file_stem
from ctapipe_gammalearn.tools.benchmark import BenchmarkTool
from ctapipe_gammalearn.tools.pseudo_observation import PseudoObservationTool
from ctapipe_gammalearn.tools.simulate import SimulateTool

CRAB = ["--source-ra=83.633", "--source-dec=22.0145"]
ROW_KEYS = {"method", "cuts", "n_on", "n_off", "alpha", "excess", "significance", "observation_time_h"}


def _simulate(path, particle, n, seed, *extra):
    argv = [f"--particle={particle}", f"--n-events={n}", f"--seed={seed}", f"--output={path}", "--no-progress",
            *extra]
    assert run_tool(SimulateTool(), argv=argv, cwd=path.parent, raises=True) == 0


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Point-like gammas at 0.4 deg wobble and diffuse protons (LST-1), DL2 of known quality added."""
    directory = tmp_path_factory.mktemp("sim")
    gamma, proton = directory / "gamma_point.dl2.h5", directory / "proton.dl2.h5"
    _simulate(gamma, "gamma", 300, 3, "--obs-id=3", "--energy-min=0.03", "--energy-max=30", "--viewcone-max=0",
              "--wobble=0.4")
    _simulate(proton, "proton", 600, 5, "--obs-id=5", "--energy-min=0.05", "--energy-max=50", "--viewcone-max=4")
    for seed, path in enumerate((gamma, proton)):
        add_dl2(path, seed=seed)
    return gamma, proton


def _benchmark(inputs, output, *extra, raises=True):
    argv = [*(f"--input={p}" for p in inputs), f"--output-dir={output}", "--min-events=1", *extra]
    return run_tool(BenchmarkTool(), argv=argv, cwd=output.parent, raises=raises)


@pytest.fixture(scope="module")
def report(simulated, tmp_path_factory):
    output = tmp_path_factory.mktemp("report") / "report"
    assert _benchmark(simulated, output) == 0
    return output, json.loads((output / "metrics.json").read_text())


def test_simulated_observation(report, capsys):
    output, metrics = report
    rows = metrics["observation"]
    assert rows and all(ROW_KEYS <= set(row) for row in rows)
    # the reference triple here has the mono HillasReconstructor geometry: no valid event
    assert {row["method"] for row in rows} >= {"Sharp", "Blurry"}
    assert {row["cuts"] for row in rows} >= {"efficiency", "threshold"}
    for row in rows:
        assert row["observation_time_h"] == 1
        assert row["alpha"] == pytest.approx(1 / 3)
        assert row["excess"] == pytest.approx(row["n_on"] - row["alpha"] * row["n_off"])
        assert (output / f"theta2_{file_stem(row['method'])}_{row['cuts']}.png").is_file()
    sharp = {r["cuts"]: r for r in rows if r["method"] == "Sharp"}
    blurry = {r["cuts"]: r for r in rows if r["method"] == "Blurry"}
    if "efficiency" in blurry:  # the sharper predictions detect the source better
        assert sharp["efficiency"]["significance"] > blurry["efficiency"]["significance"]
    # one telescope: its mono events are the stereo ones, no mono rows
    assert not any(" mono " in row["method"] for row in rows)
    cuts = read_cuts(output / CUTS_FILE)
    assert set(cuts) == {row["method"] for row in rows}
    assert set(cuts["Sharp"]) == set(sharp)
    # each method's cuts name the predictions they belong to
    assert cuts["Sharp"]["threshold"].meta["reconstructors"] == {
        "gammaness": "SharpClassifier", "energy": "SharpRegressor", "geometry": "SharpGeometry"}
    assert cuts["Sharp"]["threshold"].meta["level"] == "stereo"


def test_mono_per_telescope_type(simulated):
    """Mono methods per telescope type, one image per shower: a second copy of every
    telescope event (another tel_id of the same type) changes nothing."""
    from astropy.table import vstack

    from ctapipe_gammalearn.evaluation.events import load_events, select_events
    from ctapipe_gammalearn.evaluation.observation import simulated_observations
    from ctapipe_gammalearn.evaluation.report import REFERENCE_PREFIXES, choose_references

    tel, sub, found = load_events(list(simulated))
    tel, sub = select_events(tel, sub)
    twice = tel.copy()
    twice["tel_id"] = 2
    twice["hillas_intensity"] = twice["hillas_intensity"] / 2  # the dimmer image: not used
    both = vstack([tel, twice])
    references = choose_references(found, REFERENCE_PREFIXES)
    rows, details = simulated_observations(list(simulated), sub, found, references, tel_events=both,
                                           kinds=("threshold",))
    mono = {r["method"]: r for r in rows if " mono " in r["method"]}
    assert "Sharp mono LST_LST_LSTCam" in mono
    # the telescope-level predictions of tel 1 alone, as a stereo method would use them
    single = tel.copy()
    for name in single.colnames:
        if "_tel_" in name:
            single[name.replace("_tel_", "_")] = single[name]
    stereo_rows, _ = simulated_observations(list(simulated), single, found, references, kinds=("threshold",))
    expected = {r["method"]: r for r in stereo_rows}["Sharp"]
    assert mono["Sharp mono LST_LST_LSTCam"]["n_on"] == pytest.approx(expected["n_on"])
    assert mono["Sharp mono LST_LST_LSTCam"]["significance"] == pytest.approx(expected["significance"])


def test_observation_options(simulated, tmp_path):
    output = tmp_path / "report"
    assert _benchmark(simulated, output, "--observation-time=4", "--off-regions=1", "--on-radius=0.2",
                      "--reco-energy-min=0.05", "--reco-energy-max=20") == 0
    rows = json.loads((output / "metrics.json").read_text())["observation"]
    assert rows and all(r["observation_time_h"] == 4 and r["alpha"] == 1 for r in rows)
    cuts = read_cuts(output)
    assert all(np.allclose(t["theta_cut"].value, 0.2) for kinds in cuts.values() for t in kinds.values())


def test_no_observation_without_protons(simulated, tmp_path, capsys):
    output = tmp_path / "report"
    assert _benchmark(simulated[:1], output) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert "observation" not in metrics and not list(output.glob("theta2_*.png"))
    assert capsys.readouterr().err.count("no observation: no diffuse proton file") == 1


def test_max_off_regions(simulated, tmp_path):
    """'max': as many reflected regions of the on radius as fit at 0.4 deg."""
    output = tmp_path / "report"
    assert _benchmark(simulated, output, "--off-regions=max", "--on-radius=0.1") == 0
    rows = json.loads((output / "metrics.json").read_text())["observation"]
    assert rows and all(r["n_off_regions"] > 5 and r["alpha"] == pytest.approx(1 / r["n_off_regions"]) for r in rows)


def test_bad_off_regions(simulated, tmp_path):
    assert _benchmark(simulated, tmp_path / "r", "--off-regions=7", raises=False) != 0


@pytest.fixture(scope="module")
def runs(simulated, tmp_path_factory):
    """Two pseudo-observed 3-minute runs of the Crab (about 10^5 events each)."""
    directory = tmp_path_factory.mktemp("runs")
    paths = []
    for seed in (1, 2):
        path = directory / f"run_{seed}.dl2.h5"
        argv = [f"--gamma={simulated[0]}", f"--background={simulated[1]}", "--observation-time=0.05",
                f"--seed={seed}", f"--obs-id={seed}", f"--output={path}"]
        assert run_tool(PseudoObservationTool(), argv=argv, cwd=directory, raises=True) == 0
        paths.append(path)
    return paths


def test_pseudo_run_file(runs):
    with tables.open_file(runs[0]) as h5:
        assert "/simulation" not in h5
        for node in ("/dl1/event/subarray/trigger", "/configuration/observation/observation_block",
                     "/dl0/monitoring/telescope/pointing/tel_001", "/dl2/event/subarray/geometry/SharpGeometry"):
            assert node in h5
        columns = h5.get_node("/dl2/event/subarray/geometry/SharpGeometry").colnames
        assert not any(c.startswith("true_") for c in columns)


def test_pseudo_tool_errors(simulated, runs, tmp_path, capsys):
    gamma, proton = simulated
    argv = [f"--gamma={proton}", f"--background={proton}", f"--output={tmp_path / 'x.h5'}"]
    assert run_tool(PseudoObservationTool(), argv=argv, cwd=tmp_path, raises=False) != 0
    assert f"{proton}: not gammas" in capsys.readouterr().err
    # an existing output needs --overwrite
    argv = [f"--gamma={gamma}", f"--background={proton}", f"--output={runs[0]}", "--observation-time=0.01"]
    assert run_tool(PseudoObservationTool(), argv=argv, cwd=tmp_path, raises=False) != 0
    assert str(runs[0]) in capsys.readouterr().err


def test_observed_runs(runs, report, tmp_path):
    output = tmp_path / "crab"
    assert _benchmark(runs, output, *CRAB, f"--cuts-from={report[0] / CUTS_FILE}") == 0
    rows = json.loads((output / "metrics.json").read_text())["observation"]
    assert rows and all(ROW_KEYS | {"run_ids", "livetime_h"} <= set(r) for r in rows)
    for row in rows:
        assert row["run_ids"] == [1, 2]
        assert row["livetime_h"] == pytest.approx(0.1)
    assert list(output.glob("theta2_*.png")) and not (output / CUTS_FILE).exists()
    # the runs hold subarray DL2 only: the mono cuts of the file find no method
    assert {r["method"] for r in rows} == {"Sharp", "Blurry"}
    # a fixed gammaness threshold and θ cut instead of the cuts file
    fixed = tmp_path / "fixed"
    assert _benchmark(runs[:1], fixed, *CRAB, "--on-radius=0.2", "--gammaness-threshold=0.6") == 0
    rows = json.loads((fixed / "metrics.json").read_text())["observation"]
    assert {r["cuts"] for r in rows} == {"threshold"} and all(r["run_ids"] == [1] for r in rows)


def _strip(path, node, tmp_path):
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    with tables.open_file(copy, "r+") as h5:
        h5.remove_node(node, recursive=True)
    return copy


@pytest.mark.parametrize(
    "case, message",
    [
        ("outside", "outside the field of view"),
        ("no_events", "no events left after the cuts"),
        ("no_pointing", "no pointing"),
        ("missing", "reconstructor SharpGeometry of Sharp missing"),
        ("no_cuts", "need cuts (--cuts-from) or a θ cut"),
        ("no_source", "needs --source-ra and --source-dec"),
    ],
)
def test_observed_errors(case, message, runs, report, tmp_path, capsys):
    inputs, extra = list(runs), [*CRAB, f"--cuts-from={report[0]}"]
    if case == "outside":
        extra = ["--source-ra=120", "--source-dec=22", extra[-1]]
    elif case == "no_events":
        extra.append("--reco-energy-min=5000")
    elif case == "no_pointing":
        inputs[1] = _strip(runs[1], "/dl0/monitoring/telescope/pointing", tmp_path)
        inputs[1] = _strip(inputs[1], "/configuration/observation/observation_block", tmp_path / "..")
    elif case == "missing":
        inputs[1] = _strip(runs[1], "/dl2/event/subarray/geometry/SharpGeometry", tmp_path)
    elif case == "no_cuts":
        extra = CRAB
    elif case == "no_source":
        extra = extra[2:]
    assert _benchmark(inputs, tmp_path / "out", *extra, raises=False) != 0
    err = capsys.readouterr().err
    assert message in err
    if case in ("no_pointing", "missing"):
        assert str(inputs[1]) in err


def test_electrons_join_the_background(simulated, report, tmp_path):
    """Diffuse electrons add to the protons: same gamma-derived cuts, more background."""
    electron = tmp_path / "electron.dl2.h5"
    _simulate(electron, "electron", 200, 7, "--obs-id=7", "--energy-min=0.03", "--energy-max=30",
              "--viewcone-max=4")
    add_dl2(electron, seed=7)
    output = tmp_path / "report"
    assert _benchmark([*simulated, electron], output) == 0
    rows = {(r["method"], r["cuts"]): r for r in json.loads((output / "metrics.json").read_text())["observation"]}
    before = {(r["method"], r["cuts"]): r for r in report[1]["observation"]}
    key = ("Sharp", "threshold")
    assert rows[key]["background_rate_per_min"] > before[key]["background_rate_per_min"]
    assert rows[key]["excess"] == pytest.approx(before[key]["excess"])
