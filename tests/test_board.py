"""ctapipe-gammalearn-board on runs made here: 1-epoch trainings of a tiny network on the
session's simulated LST-1 files, the network applied to them, their benchmark report."""

import json
import re
import shutil
import sys
from unittest import mock

import numpy as np
import pytest
from ctapipe.core import run_tool

from ctapipe_gammalearn.board.configdiff import differences
from ctapipe_gammalearn.board.provenance import ProvenanceIndex
from ctapipe_gammalearn.board.runs import BoardInputError, find_runs
from ctapipe_gammalearn.compat import PARTICLE_TYPE_KEY

pytest.importorskip("plotly", reason="the board needs plotly (pip install '.[board]')")

from ctapipe_gammalearn.board.page import PANEL_IDS  # noqa: E402
from ctapipe_gammalearn.tools.board import BoardTool  # noqa: E402

LST = "LST_LST_LSTCam"
TINY = "TrainGammaPhysNet:\n  model_options: {channels: [4, 8], blocks: [1, 1], head_hidden: 8}\n"


def _train(dl1, out, *extra):
    from ctapipe_gammalearn.tools.train import TrainGammaPhysNet

    gammas, protons = dl1
    out.parent.mkdir(parents=True, exist_ok=True)
    config = out.parent / f"{out.name}.yaml"
    config.write_text(TINY)
    argv = [*(f"--signal={p}" for p in gammas), *(f"--background={p}" for p in protons), f"--config={config}",
            f"--output-dir={out}", "--epochs=1", "--batch-size=8", "--no-progress",
            f"--provenance-log={out.parent / (out.name + '.provenance.log')}", *extra]
    # provenance records sys.argv: that of the command line the tool would have had
    with mock.patch.object(sys, "argv", ["ctapipe-train-gammalearn", *argv]):
        assert run_tool(TrainGammaPhysNet(), argv, cwd=out.parent, raises=True) == 0


def _apply(model, dl1, out):
    from ctapipe_gammalearn.tools.apply import ApplyGammaPhysNet

    argv = [f"--input={dl1}", f"--model={model}", f"--output={out}"]
    assert run_tool(ApplyGammaPhysNet(), argv, cwd=out.parent, raises=True) == 0


def _point_gammas(directory):
    """Point-like gammas at the usual wobble: the benchmark's simulated source detection needs them."""
    from ctapipe_gammalearn.tools.simulate import SimulateTool

    path = directory / "gamma_point_s7_o7.dl1.h5"
    if not path.exists():
        argv = ["--particle=gamma", "--n-events=40", "--seed=7", "--obs-id=7", "--energy-min=0.05",
                "--energy-max=20", "--viewcone-max=0", "--wobble=0.4", f"--output={path}", "--no-progress"]
        assert run_tool(SimulateTool(), argv, cwd=directory, raises=True) == 0
    return path


def board_runs(tmp_path_factory):
    """Made once per session: ``experiment/`` (``train/`` + ``benchmark/``), a training ``lr_high``
    with another learning rate and seed and no benchmark, and the DL2 files of the first."""
    pytest.importorskip("torch", reason="the runs are trainings of ctapipe-train-gammalearn (torch)")
    from test_data_sim import simulated_dl1

    from ctapipe_gammalearn.tools.benchmark import BenchmarkTool

    root = tmp_path_factory.getbasetemp() / "board_runs"
    done = root / "done"
    paths = {"experiment": root / "experiment", "lr_high": root / "lr_high", "dl2": root / "dl2"}
    if done.exists():
        return paths
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    gammas, protons = simulated_dl1(tmp_path_factory)
    point = _point_gammas(gammas[0].parent)
    _train((gammas, protons), paths["experiment"] / "train", "--seed=1")
    _train((gammas, protons), paths["lr_high"], "--seed=2", "--learning-rate=0.01")
    paths["dl2"].mkdir()
    model = paths["experiment"] / "train" / f"gammaphysnet_{LST}.onnx"
    dl2 = []
    for dl1 in (point, *protons):
        dl2.append(paths["dl2"] / dl1.name.replace(".dl1.", ".dl2."))
        _apply(model, dl1, dl2[-1])
    bench = paths["experiment"] / "benchmark"
    argv = [*(f"--input={p}" for p in dl2), f"--output-dir={bench}", "--min-events=1",
            f"--provenance-log={root / 'benchmark.provenance.log'}"]
    assert run_tool(BenchmarkTool(), argv, cwd=root, raises=True) == 0
    done.touch()
    return paths


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return board_runs(tmp_path_factory)


def dl2_run(paths):
    return ",".join(str(p) for p in sorted(paths["dl2"].glob("*.dl2.h5")))


def make_board(paths, output, *extra, cwd=None):
    """The page of every kind of run: ``(exit code, html)``."""
    argv = [
        str(paths["experiment"]), str(paths["lr_high"]), str(paths["experiment"] / "benchmark"), dl2_run(paths),
        "--name=experiment", "--name=lr_high", "--name=benchmark_only", "--name=from_dl2",
        f"--output={output}", "--min-events=1", f"--provenance={paths['experiment'].parent / '*.log'}", *extra,
    ]
    code = run_tool(BoardTool(), argv, cwd=cwd or output.parent, raises=False)
    return code, output.read_text() if output.exists() else None


@pytest.fixture(scope="module")
def board(runs, tmp_path_factory):
    output = tmp_path_factory.mktemp("board") / "board.html"
    code, page = make_board(runs, output, f"--png={output.with_suffix('.png')}")
    assert code == 0
    return output, page


def figure_data(page, div_id):
    """The traces of one plotly figure of the page (the json after its Plotly.newPlot call)."""
    match = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', page)
    assert match, f"no figure {div_id}"
    data, _ = json.JSONDecoder().raw_decode(page, match.end())
    return data


def test_page_holds_every_run_and_panel(board, runs):
    output, page = board
    names = ["experiment", "lr_high", "benchmark_only", "from_dl2"]
    for name in names:
        assert f'data-switch="runs" value="{name}"' in page
        assert f'<tr data-run="{name}"' in page
    for div_id in PANEL_IDS:
        assert f'id="{div_id}"' in page, div_id
    # what each kind of run holds is drawn: trainings in the training curves, benchmarks against energy
    assert {t["meta"]["run"] for t in figure_data(page, "panel-training")} == {"experiment", "lr_high"}
    with_benchmark = {"experiment", "benchmark_only", "from_dl2"}
    for panel in ("angular_resolution_deg", "energy_resolution", "energy_bias", "auc"):
        traces = figure_data(page, f"panel-{panel}")
        assert {t["meta"]["run"] for t in traces} == with_benchmark, panel
        assert "GammaPhysNet" in {t["meta"]["method"] for t in traces}
    assert {t["meta"]["run"] for t in figure_data(page, "panel-roc")} - {""} == with_benchmark
    # the effective area needs DL2: only the run given as DL2 has one without --read-dl2
    assert {t["meta"]["run"] for t in figure_data(page, "panel-effective_area")} == {"from_dl2"}
    # θ² images of the benchmark report and of the DL2 computation
    assert page.count('<img alt="theta2_') >= 2
    # self-contained: plotly.js is in the page and nothing is loaded from elsewhere
    assert "plotly.js" in page[:2000] or "Plotly" in page[:200000]
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', page)
    png = output.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000


def test_summary_numbers_are_those_of_the_benchmark(board, runs):
    _, page = board
    metrics = json.loads((runs["experiment"] / "benchmark" / "metrics.json").read_text())
    auc = metrics["stereo"]["GammaPhysNetClassifier"][PARTICLE_TYPE_KEY]["overall"]["auc"]
    report = json.loads((runs["experiment"] / "train" / "report.json").read_text())
    row = re.search(r'<tr data-run="experiment" data-method="GammaPhysNet">(.*?)</tr>', page).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[3] == report["training"]["preset"]
    assert int(cells[5]) == report["training"]["n_train"]
    assert float(cells[6]) == pytest.approx(auc, rel=2e-3)
    # the DL2 run is measured with the benchmark's own functions on the same files
    dl2_row = re.search(r'<tr data-run="from_dl2" data-method="GammaPhysNet">(.*?)</tr>', page).group(1)
    assert re.findall(r"<td[^>]*>(.*?)</td>", dl2_row)[6] == cells[6]
    # the training's command came from its provenance log
    assert "ctapipe-train-gammalearn --signal=" in page


def test_config_differences(board, runs):
    _, page = board
    table = re.search(r'<table id="config-differences">(.*?)</table>', page, re.S).group(1)
    keys = re.findall(r'<tr><td class="text">([^<]+)</td>', table)
    assert "train.learning_rate" in keys and "train.seed" in keys
    assert not any(k.endswith(("output_path", "provenance_log")) for k in keys)
    assert "train.preset" not in keys  # the same in both trainings
    # the benchmark's settings are shared by the three runs that have one: no difference
    assert not any(k.startswith("benchmark.") for k in keys)
    found = find_runs([str(runs["experiment"]), str(runs["lr_high"])])
    from ctapipe_gammalearn.board.configdiff import run_settings

    diff = differences({run.name: run_settings(run) for run in found})
    assert diff["train.learning_rate"] == {"experiment": 0.002, "lr_high": 0.01}


def test_one_kind_alone_still_gives_a_page(runs, tmp_path):
    benchmark_only = tmp_path / "benchmark.html"
    argv = [str(runs["experiment"] / "benchmark"), f"--output={benchmark_only}"]
    assert run_tool(BoardTool(), argv, cwd=tmp_path, raises=False) == 0
    page = benchmark_only.read_text()
    assert figure_data(page, "panel-angular_resolution_deg")
    assert "no run holds a training" in page
    training_only = tmp_path / "training.html"
    argv = [str(runs["lr_high"]), f"--output={training_only}"]
    assert run_tool(BoardTool(), argv, cwd=tmp_path, raises=False) == 0
    page = training_only.read_text()
    assert {t["meta"]["run"] for t in figure_data(page, "panel-training")} == {"lr_high"}
    assert 'id="panel-angular_resolution_deg" class="empty-panel"' in page
    assert '<tr data-run="lr_high">' in page


def test_globs_and_read_dl2(runs, board, tmp_path):
    output = tmp_path / "glob.html"
    argv = [f"{runs['experiment'].parent}/[el]*", f"--output={output}", "--read-dl2"]
    assert run_tool(BoardTool(), argv, cwd=tmp_path, raises=False) == 0
    page = output.read_text()
    assert re.findall(r'data-switch="runs" value="([^"]+)"', page) == ["experiment", "lr_high"]
    # --read-dl2: the benchmark's own DL2 inputs give its effective area, that of the same files given as DL2
    traces = figure_data(page, "panel-effective_area")
    assert {t["meta"]["run"] for t in traces} == {"experiment"}
    from_dl2 = {t["meta"]["method"]: t["y"] for t in figure_data(board[1], "panel-effective_area")}
    assert {t["meta"]["method"]: t["y"] for t in traces} == from_dl2


def test_effective_area_counts_the_selected_gammas(runs):
    """A 1-epoch network puts every gammaness below the page's 0.5: without the cut, the area is that of
    the simulated throw times the fraction of valid events."""
    import astropy.units as u

    from ctapipe_gammalearn.board.dl2 import benchmark_effective_area
    from ctapipe_gammalearn.evaluation.metrics import energy_bins

    run = find_runs([str(runs["experiment"])])[0]
    bins = energy_bins(0.02 * u.TeV, 200 * u.TeV, 5)
    no_cut = benchmark_effective_area(run, bins, gammaness_cut=-1.0)["methods"]["GammaPhysNet"]["bins"]
    everything = benchmark_effective_area(run, bins, gammaness_cut=1.0)["methods"]["GammaPhysNet"]["bins"]
    areas = np.array([b["effective_area_m2"] for b in no_cut])
    assert np.nanmax(areas) > 1e3  # LST-1 triggers on 10⁴–10⁵ m² at TeV energies
    assert np.nansum([b["effective_area_m2"] for b in everything]) == 0


def test_refuses_to_overwrite(board, runs):
    output, _ = board
    before = output.stat().st_mtime_ns
    code, _ = make_board(runs, output)
    assert code != 0
    assert output.stat().st_mtime_ns == before


def _errors(capfd):
    err = capfd.readouterr().err
    # ctapipe adds "Use --help for more info" to a configuration error, as for every tool
    return [line for line in err.splitlines() if "ERROR" in line and "--help" not in line], err


def _assert_one_error(capfd, text, output):
    errors, err = _errors(capfd)
    assert len(errors) == 1 and text in errors[0], err[-2000:]
    assert "Traceback" not in err
    assert not output.exists()
    assert not list(output.parent.glob(f".{output.name}.*")), "temporary left behind"


def test_folder_of_no_kind(tmp_path, capfd):
    folder = tmp_path / "holiday_photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing of a run")
    output = tmp_path / "board.html"
    assert run_tool(BoardTool(), [str(folder), f"--output={output}"], cwd=tmp_path, raises=False) != 0
    _assert_one_error(capfd, f"{folder}: neither a training output", output)


@pytest.mark.parametrize("name", ["metrics.json", "report.json"])
def test_corrupt_json_names_the_file(tmp_path, capfd, name):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / name).write_text('{"epochs": [1, 2,')  # a run killed while writing with a plain open()
    output = tmp_path / "board.html"
    assert run_tool(BoardTool(), [str(folder), f"--output={output}"], cwd=tmp_path, raises=False) != 0
    _assert_one_error(capfd, f"{folder / name}: corrupt JSON", output)


def test_names_must_match_the_runs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.json").write_text("{}")
    with pytest.raises(BoardInputError, match="2 --name value"):
        find_runs([str(tmp_path / "a")], ("x", "y"))
    with pytest.raises(BoardInputError, match="no such file"):
        find_runs([str(tmp_path / "missing")])


def test_provenance_log_with_several_runs(tmp_path):
    """ctapipe appends one json list per run to a log: the newest activity writing into the folder wins."""
    run = tmp_path / "run"
    run.mkdir()
    old = {"activity_name": "ctapipe-train-gammalearn", "start": {"time_utc": "2026-01-01T10:00:00"},
           "output": [{"url": str(run / "report.json")}], "system": {"arguments": ["x", "--epochs=1"]}}
    other = dict(old, output=[{"url": str(tmp_path / "elsewhere" / "report.json")}],
                 start={"time_utc": "2026-03-01T10:00:00"})
    new = dict(old, start={"time_utc": "2026-02-01T10:00:00"}, system={"arguments": ["x", "--epochs=5"]})
    (tmp_path / "run.provenance.log").write_text(json.dumps([old]) + json.dumps([other, new]))
    activity = ProvenanceIndex().activity_for(run)
    assert activity["system"]["arguments"] == ["x", "--epochs=5"]
    assert ProvenanceIndex().activity_for(tmp_path / "nothing_here") is None


def test_differences_ignore_missing_keys():
    settings = {"a": {"x": 1, "y": [1, 2]}, "b": {"x": 1, "y": [1, 3]}, "c": {"z": np.float64(2.0)}}
    assert differences(settings) == {"y": {"a": [1, 2], "b": [1, 3]}}
