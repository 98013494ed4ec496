"""ctapipe-gammalearn-benchmark on DL2 files: real DL1 events of sim_telarray files
with DL2 predictions of known quality added, and ctapipe's own HillasReconstructor.

The files make a mixed array: LSTCam, LSTN-design and MSTx-NectarCam telescopes,
the last two in a gamma and a proton file."""

import json
import shutil
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import tables
from astropy.table import Table, join, vstack
from ctapipe.core import run_tool
from ctapipe.instrument import SubarrayDescription
from ctapipe.io.astropy_helpers import read_table, write_table

from ctapipe_gammalearn.compat import PARTICLE_TYPE_KEY
from ctapipe_gammalearn.evaluation.events import (
    TEL_TYPE_COLUMN,
    BenchmarkInputError,
    find_reconstructors,
    load_events,
    select_events,
)
from ctapipe_gammalearn.evaluation.metrics import energy_bins
from ctapipe_gammalearn.evaluation.report import benchmark_all, to_json
from ctapipe_gammalearn.evaluation.sensitivity import SensitivityUnavailable, simulation_inputs
from ctapipe_gammalearn.tools.benchmark import BenchmarkTool

GAMMA_DL1 = "dl1/gamma__test_lasercal_v3.dl1.h5"  # 4 LSTs: the loader is slow per telescope
PROTON_DL1 = "dl1/proton__5764bf77_proton_run000001_za20deg_azm180deg_North_CTAO-North-Alpha_7.0.0_test.dl1.h5"
#: LSTN-design + MSTx-NectarCam gammas: the proton file's telescope types
MIXED_GAMMA_DL1 = "dl1/gamma__01a5ccb0_gamma_diffuse_run000010_za20deg_azm000deg_North_alpha_6.0.0_test_file.dl1.h5"

#: prefix -> spread of its predictions around the truth; "Sharp" is the better one
SPREAD = {"SharpRegressor": 0.05, "BlurryRegressor": 0.5}
DIRECTION_SPREAD_DEG = {"SharpGeometry": 0.05, "BlurryGeometry": 0.8}
SEPARATION = {"SharpClassifier": 4.0, "BlurryClassifier": 0.3}


def _gammaness(is_gamma, separation, rng):
    score = rng.normal(np.where(is_gamma, separation / 2, -separation / 2), 1.0)
    return 1 / (1 + np.exp(-score))


def _predictions(events, kind, prefix, tag, rng):
    n = len(events)
    out = Table()
    if kind == "energy":
        energy = u.Quantity(events["true_energy"]).to_value(u.TeV) * np.exp(rng.normal(0, SPREAD[prefix], n))
        out[f"{prefix}_{tag}energy"] = energy * u.TeV
    elif kind == "geometry":
        sigma = DIRECTION_SPREAD_DEG[prefix]
        alt = u.Quantity(events["true_alt"]).to_value(u.deg) + rng.normal(0, sigma, n)
        az = u.Quantity(events["true_az"]).to_value(u.deg) + rng.normal(0, sigma, n) / np.cos(np.radians(alt))
        out[f"{prefix}_{tag}alt"] = alt * u.deg
        out[f"{prefix}_{tag}az"] = az * u.deg
    else:
        is_gamma = np.asarray(events["true_shower_primary_id"]) == 0
        out[f"{prefix}_{tag}prediction"] = _gammaness(is_gamma, SEPARATION[prefix], rng)
    # one invalid prediction per table, kept as a row
    valid = np.ones(n, bool)
    valid[:1] = False
    out[f"{prefix}_{tag}is_valid"] = valid
    return out


def add_dl2(path, seed=0):
    """Write mono and stereo DL2 of every prefix in SPREAD/DIRECTION_SPREAD_DEG/SEPARATION."""
    rng = np.random.default_rng(seed)
    kinds = {"energy": SPREAD, "geometry": DIRECTION_SPREAD_DEG, PARTICLE_TYPE_KEY: SEPARATION}
    # plain table reads: the TableLoader is slow on files with many telescopes
    sub = read_table(path, "/simulation/event/subarray/shower")
    with tables.open_file(path) as h5:
        names = list(h5.get_node("/dl1/event/telescope/parameters")._v_children)
    index = [read_table(path, f"/dl1/event/telescope/parameters/{n}")[["obs_id", "event_id", "tel_id"]] for n in names]
    tel = join(vstack(index), sub, keys=["obs_id", "event_id"])
    for kind, prefixes in kinds.items():
        for prefix in prefixes:
            table = Table(sub[["obs_id", "event_id"]])
            for name, col in _predictions(sub, kind, prefix, "", rng).columns.items():
                table[name] = col
            write_table(table, path, f"/dl2/event/subarray/{kind}/{prefix}", append=True)
            for tel_id in np.unique(tel["tel_id"]):
                rows = tel[tel["tel_id"] == tel_id]
                table = Table(rows[["obs_id", "event_id", "tel_id"]])
                for name, col in _predictions(rows, kind, prefix, "tel_", rng).columns.items():
                    table[name] = col
                write_table(table, path, f"/dl2/event/telescope/{kind}/{prefix}/tel_{tel_id:03d}", append=True)


@pytest.fixture(scope="module")
def dl2_files(shared_data, tmp_path_factory):
    """Real DL1 events (two gamma files, one proton file) with DL2 predictions of known quality."""
    directory = tmp_path_factory.mktemp("dl2")
    paths = []
    for i, name in enumerate([GAMMA_DL1, PROTON_DL1, MIXED_GAMMA_DL1]):
        path = directory / f"{i}_{name.split('/')[1].split('__')[0]}.dl2.h5"
        shutil.copy(shared_data / name, path)  # a scratch copy outside the project
        path.chmod(0o644)
        add_dl2(path, seed=i)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def report(dl2_files, tmp_path_factory):
    output = tmp_path_factory.mktemp("report") / "report"
    tool = BenchmarkTool()
    argv = [*(f"--input={p}" for p in dl2_files), f"--output-dir={output}", "--min-events=1"]
    assert run_tool(tool, argv=argv, cwd=output.parent, raises=True) == 0
    return output, json.loads((output / "metrics.json").read_text())


def test_find_reconstructors(dl2_files):
    found = find_reconstructors(dl2_files[0])
    for level in ("mono", "stereo"):
        assert found[level]["energy"] == sorted(SPREAD)
        assert found[level]["geometry"] == sorted(DIRECTION_SPREAD_DEG)
        assert found[level][PARTICLE_TYPE_KEY] == sorted(SEPARATION)


@pytest.fixture(scope="module")
def loaded(dl2_files):
    return load_events(dl2_files)


def test_common_selection(loaded, dl2_files):
    tel, sub, _ = loaded
    tel_sel, sub_sel = select_events(tel, sub)
    assert 0 < len(tel_sel) < len(tel)
    assert np.all(tel_sel["hillas_intensity"] > 50)
    assert np.all(tel_sel["leakage_intensity_width_2"] < 0.2)
    # events of every file survive and keep their file of origin
    assert set(np.unique(sub_sel["file_index"])) == set(range(len(dl2_files)))
    assert 0 < len(sub_sel) <= len(sub)


def test_report_files(report):
    output, metrics = report
    names = {p.name for p in output.iterdir()}
    assert "metrics.json" in names
    for level in ("mono", "stereo"):
        for metric in ("angular_resolution_deg", "energy_resolution", "energy_bias", "auc", "roc"):
            assert f"{level}_{metric}.png" in names
    assert not list(output.parent.glob(".report.*")), "temporary directory left behind"


def test_telescope_type_of_each_event(loaded, dl2_files):
    """Types come from each file's own subarray: tel_ids mean different telescopes in different files."""
    tel, _, _ = loaded
    for index, path in enumerate(dl2_files):
        subarray = SubarrayDescription.from_hdf(path, focal_length_choice="EQUIVALENT")
        rows = tel[tel["file_index"] == index]
        assert len(rows) > 0
        for tel_id, tel_type in zip(rows["tel_id"], rows[TEL_TYPE_COLUMN]):
            assert tel_type == str(subarray.tel[int(tel_id)])
    assert {"LST_LST_LSTCam", "LST_LSTN-design_LSTN-design", "MST_MSTx-NectarCam_MSTx-NectarCam"} <= set(
        tel[TEL_TYPE_COLUMN]
    )


def test_mono_per_telescope_type(report, loaded):
    """The per-type split adds up to the pooled counts, and each type's numbers are
    those of the pooled computation on that type's events alone."""
    output, metrics = report
    by_type, counts = metrics["mono_by_type"], metrics["n_selected"]
    assert len(by_type) > 1
    assert sum(counts["mono_by_type"].values()) == counts["mono"]
    sharp = {"energy": "SharpRegressor", "geometry": "SharpGeometry", PARTICLE_TYPE_KEY: "SharpClassifier"}
    for kind, prefix in sharp.items():
        pooled = metrics["mono"][prefix][kind]
        columns = ["n_events", "n_gamma", "n_background"] if kind == PARTICLE_TYPE_KEY else ["n_events"]
        for column in columns:
            per_type = [sum(b[column] for b in by_type[t][prefix][kind]["bins"]) for t in by_type]
            assert sum(per_type) == sum(b[column] for b in pooled["bins"])
            for i in range(len(pooled["bins"])):
                assert sum(by_type[t][prefix][kind]["bins"][i][column] for t in by_type) == pooled["bins"][i][column]
    tel, sub, found = loaded
    tel, sub = select_events(tel, sub)
    for tel_type, measured in by_type.items():
        alone = tel[tel[TEL_TYPE_COLUMN] == tel_type]
        expected, _ = benchmark_all(alone, sub[:0], found, energy_bins(), min_events=1)
        assert "mono_by_type" not in expected  # one type: pooled only
        assert measured == json.loads(to_json(expected))["mono"]
        name = f"mono_{tel_type}_energy_resolution.png"
        assert (output / name).is_file()
    # gammas and protons of the same MST type: it has its ROC curve
    assert by_type["MST_MSTx-NectarCam_MSTx-NectarCam"]["SharpClassifier"][PARTICLE_TYPE_KEY]["roc"]["fpr"]
    assert (output / "mono_MST_MSTx-NectarCam_MSTx-NectarCam_roc.png").is_file()


def test_report_ranks_methods(report):
    """The predictions made sharper must come out better, mono and stereo."""
    _, metrics = report
    for level in ("mono", "stereo"):
        m = metrics[level]
        sharp = m["SharpRegressor"]["energy"]["overall"]["energy_resolution"]
        blurry = m["BlurryRegressor"]["energy"]["overall"]["energy_resolution"]
        assert sharp < blurry
        sharp = m["SharpGeometry"]["geometry"]["overall"]["angular_resolution_deg"]
        blurry = m["BlurryGeometry"]["geometry"]["overall"]["angular_resolution_deg"]
        assert sharp < blurry
        sharp = m["SharpClassifier"][PARTICLE_TYPE_KEY]["overall"]["auc"]
        blurry = m["BlurryClassifier"][PARTICLE_TYPE_KEY]["overall"]["auc"]
        assert sharp > blurry


def test_report_counts_same_events(report):
    """All reconstructors of a kind see the same events; invalid ones lower the valid fraction."""
    _, metrics = report
    for level in ("mono", "stereo"):
        m = metrics[level]
        a = m["SharpRegressor"]["energy"]["bins"]
        b = m["BlurryRegressor"]["energy"]["bins"]
        assert [x["n_events"] for x in a] == [x["n_events"] for x in b]
        assert sum(x["n_events"] for x in a) == m["SharpRegressor"]["energy"]["overall"]["n_events"] > 0
        assert m["SharpRegressor"]["energy"]["overall"]["valid_fraction"] <= 1.0
        # empty bins: zero events and null metrics
        empty = [x for x in a if x["n_events"] == 0]
        assert empty and all(x["energy_resolution"] is None for x in empty)


def test_simulation_inputs(loaded, dl2_files):
    """Point-like gammas and diffuse protons are found; diffuse gammas are not used."""
    _, sub, _ = loaded
    inputs = simulation_inputs(dl2_files, sub)
    gamma_files, gamma_sim = inputs["gammas"]
    proton_files, proton_sim = inputs["protons"]
    assert gamma_files == [0] and proton_files == [1]  # file 2 holds diffuse gammas
    assert gamma_sim.viewcone_max == gamma_sim.viewcone_min
    assert proton_sim.viewcone_max > proton_sim.viewcone_min
    # every simulated shower counts, triggered or not
    showers = read_table(dl2_files[1], "/simulation/service/shower_distribution")
    assert proton_sim.n_showers == showers["n_entries"].sum() > np.count_nonzero(sub["file_index"] == 1)
    gammas_only = sub[sub["file_index"] != 1]
    with pytest.raises(SensitivityUnavailable, match="no diffuse proton"):
        simulation_inputs(dl2_files, gammas_only)
    with pytest.raises(SensitivityUnavailable, match="no point-like gamma"):
        simulation_inputs(dl2_files, sub[sub["file_index"] == 1])


def test_report_sensitivity(report):
    output, metrics = report
    sensitivity = metrics["sensitivity"]
    assert sensitivity["observation_time_h"] == 50
    assert sensitivity["methods"] and set(sensitivity["methods"]) <= {"reference", "Sharp", "Blurry"}
    for method in sensitivity["methods"].values():
        assert set(method["reconstructors"]) == {"gammaness", "energy", "geometry"}
        assert len(method["bins"]) == len(metrics["energy_bins_tev"]) - 1
    assert (output / "sensitivity.png").is_file()


def test_no_sensitivity_without_protons(dl2_files, tmp_path, capsys):
    """A report without protons skips the sensitivity with one log line, not an error."""
    output = tmp_path / "report"
    argv = [f"--input={dl2_files[0]}", f"--input={dl2_files[2]}", f"--output-dir={output}", "--min-events=1"]
    assert run_tool(BenchmarkTool(), argv=argv, cwd=tmp_path, raises=True) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert "sensitivity" not in metrics and not (output / "sensitivity.png").exists()
    err = capsys.readouterr().err
    assert err.count("no sensitivity curve: no diffuse proton file") == 1
    # the source detection is skipped alike
    assert "observation" not in metrics and err.count("no observation: no diffuse proton file") == 1
    # the per-type split does not depend on the sensitivity
    assert len(metrics["mono_by_type"]) > 1


def test_no_observation_of_on_axis_gammas(report):
    """These point-like gammas are simulated at the pointing: no off region, no observation
    section (the wobble case is tests/test_observation_report.py)."""
    output, metrics = report
    assert "observation" not in metrics
    assert not list(output.glob("theta2_*.png")) and not (output / "cuts.ecsv").exists()


def test_refuses_to_overwrite(report, dl2_files):
    output, _ = report
    before = (output / "metrics.json").stat().st_mtime_ns
    tool = BenchmarkTool()
    rc = run_tool(tool, argv=[f"--input={dl2_files[0]}", f"--output-dir={output}"], cwd=output.parent, raises=False)
    assert rc != 0
    assert (output / "metrics.json").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d, src: d / "missing.dl2.h5", "no such file"),
        (lambda d, src: _strip(shutil.copy(src, d / "dl1only.h5"), "/dl2"), "no DL2"),
        (lambda d, src: _strip(shutil.copy(src, d / "notruth.h5"), "/simulation"), "no simulated truth"),
    ],
    ids=["missing", "no-dl2", "no-truth"],
)
def test_bad_input_errors(make_input, message, dl2_files, tmp_path, capsys):
    bad = make_input(tmp_path, dl2_files[0])
    with pytest.raises(BenchmarkInputError, match=f"{bad}: .*{message}"):
        load_events([dl2_files[1], bad])
    # the tool exits non-zero with that one line, and leaves no output
    argv = [f"--input={dl2_files[1]}", f"--input={bad}", f"--output-dir={tmp_path / 'out'}"]
    assert run_tool(BenchmarkTool(), argv=argv, cwd=tmp_path, raises=False) != 0
    assert f"{bad}: " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _strip(path, node):
    path = Path(path)
    path.chmod(0o644)
    with tables.open_file(path, "a") as h5:
        h5.remove_node(node, recursive=True)
    return path


def test_failed_report_keeps_the_old_one(report, dl2_files, monkeypatch):
    """A report that fails half-way leaves the old folder whole and no temporary behind."""
    from ctapipe_gammalearn.evaluation import writer

    output, _ = report
    before = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "plot_metric", fail)
    argv = [f"--input={dl2_files[0]}", f"--output-dir={output}", "--overwrite", "--min-events=1"]
    assert run_tool(BenchmarkTool(), argv=argv, cwd=output.parent, raises=False) != 0
    assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == before
    assert sorted(p.name for p in output.parent.iterdir() if p.name.startswith(".")) == []
