"""ctapipe-gammalearn-add-nsb: MC -> MC + Poisson(λ), cleaned and parametrised anew, same layout."""

import shutil

import numpy as np
import pytest
import tables
from ctapipe.core import ToolConfigurationError, run_tool
from ctapipe.image import tailcuts_clean
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import TableLoader, read_table
from ctapipe.io.hdf5dataformat import DL1_TEL_IMAGES_GROUP

from ctapipe_gammalearn.data.cache import build_cache
from ctapipe_gammalearn.data.inputs import InputFile
from ctapipe_gammalearn.simulation.conditions import CONDITIONS_TABLE
from ctapipe_gammalearn.tools.add_nsb import MODIFICATIONS_TABLE, AddNSBTool
from ctapipe_gammalearn.tools.simulate import SimulateTool

N_EVENTS = 10
# the simulated truth and the configuration ctapipe writes, which the noise must leave as they are
KEPT = [
    "/simulation/event/subarray/shower",
    "/simulation/event/telescope/images/tel_001",
    "/simulation/event/telescope/impact/tel_001",
    "/simulation/event/telescope/parameters/tel_001",
    "/simulation/service/shower_distribution",
    "/configuration/simulation/run",
    "/dl1/event/subarray/trigger",
    "/dl1/event/telescope/trigger",
    CONDITIONS_TABLE,
]


def add_nsb(*args, cwd):
    return run_tool(AddNSBTool(), argv=["--no-progress", *map(str, args)], cwd=cwd, raises=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("add_nsb")


@pytest.fixture(scope="module")
def mc(workdir):
    path = workdir / "gamma.dl1.h5"
    argv = [
        f"--output={path}", f"--n-events={N_EVENTS}", "--seed=3", "--energy-min=0.2", "--energy-max=10",
        "--core-max=200", "--workers=1", "--no-progress", "--AirShowerSimEventSource.showers_per_batch=16",
    ]
    assert run_tool(SimulateTool(), argv=argv, cwd=workdir, raises=False) == 0
    return path


@pytest.fixture(scope="module")
def noisy(mc, workdir):
    path = workdir / "gamma_nsb.dl1.h5"
    assert add_nsb(f"--input={mc}", f"--output={path}", "--nsb-pe=0.4", "--seed=1", cwd=workdir) == 0
    return path


def _events(path):
    with TableLoader(path) as loader:
        return loader.read_telescope_events(dl1_images=True, dl1_parameters=True, simulated=True, true_images=True)


def _leaves(path):
    with tables.open_file(path) as h5:
        return {node._v_pathname: node.nrows for node in h5.walk_nodes("/", "Table")}


def test_noise_is_poisson_with_its_mean_subtracted(mc, noisy):
    before, after = _events(mc), _events(noisy)
    assert len(before) == len(after) == N_EVENTS
    added = np.asarray(after["image"], dtype=float) - np.asarray(before["image"], dtype=float)
    # every pixel got a whole number of p.e., minus the mean 0.4
    counts = added + 0.4
    np.testing.assert_allclose(counts, np.round(counts), atol=2e-3)
    assert counts.min() > -2e-3
    # 18550 pixels: mean and variance of Poisson(0.4) - 0.4 to within a few standard errors
    assert abs(added.mean()) < 0.02
    assert added.var() == pytest.approx(0.4, rel=0.06)
    np.testing.assert_array_equal(after["peak_time"], before["peak_time"])


def test_cleaning_and_parameters_are_recomputed(noisy, mc):
    before, after = _events(mc), _events(noisy)
    geometry = SubarrayDescription.from_hdf(noisy).tel[1].camera.geometry
    for row in after:
        # ctapipe's default cleaning (tailcuts 10/5, 2 neighbours) of the noisy image
        mask = tailcuts_clean(geometry, row["image"], 10.0, 5.0, min_number_picture_neighbors=2)
        np.testing.assert_array_equal(row["image_mask"], mask)
    intensity = np.array([row["image"][row["image_mask"]].sum() for row in after])
    valid = np.isfinite(after["hillas_intensity"])
    np.testing.assert_allclose(after["hillas_intensity"][valid], intensity[valid], rtol=1e-5)
    assert np.any(np.asarray(after["image_mask"]) != np.asarray(before["image_mask"]))
    assert not np.allclose(after["hillas_intensity"][valid], before["hillas_intensity"][valid])


def test_same_layout_and_truth(mc, noisy):
    tables_in, tables_out = _leaves(mc), _leaves(noisy)
    assert set(tables_out) == set(tables_in) | {MODIFICATIONS_TABLE}
    for path, n_rows in tables_in.items():
        assert tables_out[path] == n_rows, path
    for path in KEPT:
        a, b = read_table(mc, path), read_table(noisy, path)
        for column in a.colnames:
            np.testing.assert_array_equal(np.asarray(a[column]), np.asarray(b[column]), err_msg=f"{path}:{column}")
    assert SubarrayDescription.from_hdf(noisy) == SubarrayDescription.from_hdf(mc)


def test_transform_is_recorded_and_chains(noisy, workdir):
    record = read_table(noisy, MODIFICATIONS_TABLE)
    assert list(record["tool"]) == ["ctapipe-gammalearn-add-nsb"]
    assert record["poisson_mean_pe"][0] == 0.4 and record["seed"][0] == 1 and record["mean_subtracted"][0]
    again = workdir / "gamma_nsb_twice.dl1.h5"
    assert add_nsb(f"--input={noisy}", f"--output={again}", "--nsb-pe=0.2", "--seed=2", cwd=workdir) == 0
    record = read_table(again, MODIFICATIONS_TABLE)
    assert list(record["poisson_mean_pe"]) == [0.4, 0.2]
    assert list(record["input"]) == ["gamma.dl1.h5", "gamma_nsb.dl1.h5"]
    # the simulator's record of the observing conditions comes along
    assert read_table(again, CONDITIONS_TABLE)["nsb_scale"][0] == 1.0


def test_seed_decides_the_noise(mc, noisy, workdir):
    same, other = workdir / "same.dl1.h5", workdir / "other.dl1.h5"
    assert add_nsb(f"--input={mc}", f"--output={same}", "--nsb-pe=0.4", "--seed=1", cwd=workdir) == 0
    assert add_nsb(f"--input={mc}", f"--output={other}", "--nsb-pe=0.4", "--seed=2", cwd=workdir) == 0
    np.testing.assert_array_equal(_events(same)["image"], _events(noisy)["image"])
    assert not np.array_equal(_events(other)["image"], _events(noisy)["image"])


def test_training_cache_reads_it_like_the_input(mc, noisy, workdir):
    caches = {
        name: build_cache([InputFile(path, 0)], workdir / f"cache_{name}", chunk_size=4, progress=False)
        for name, path in (("mc", mc), ("noisy", noisy))
    }
    assert len(caches["mc"]) == len(caches["noisy"]) == N_EVENTS
    for column in ("log10_energy", "fov_offset", "impact", "event_id"):
        np.testing.assert_array_equal(caches["mc"][column], caches["noisy"][column])
    assert not np.array_equal(caches["mc"]["image"], caches["noisy"]["image"])


def test_apply_tool_reads_it(noisy, workdir):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from tiny_models import TinyNet, lattice_of

    from ctapipe_gammalearn.nn.export import export_model
    from ctapipe_gammalearn.tools.apply import ApplyGammaPhysNet

    subarray = SubarrayDescription.from_hdf(noisy)
    geometry = subarray.tel[1].camera.geometry
    model = export_model(TinyNet(geometry.n_pixels), lattice_of(geometry), str(subarray.tel[1]), workdir / "tiny")
    output = workdir / "noisy.dl2.h5"
    argv = ["--no-progress", "--n-threads=1", f"--input={noisy}", f"--output={output}", f"--model={model['onnx']}"]
    assert run_tool(ApplyGammaPhysNet(), argv, cwd=workdir, raises=False) == 0
    with TableLoader(output) as loader:
        dl2 = loader.read_telescope_events(dl2=True, simulated=False, pointing=False)
    assert len(dl2) == N_EVENTS
    assert np.any(dl2["GammaPhysNetEnergy_tel_is_valid"])


def test_refuses_a_file_without_images(noisy, workdir, capsys):
    params_only = workdir / "params_only.dl1.h5"
    shutil.copyfile(noisy, params_only)
    with tables.open_file(params_only, "a") as h5:
        h5.remove_node(DL1_TEL_IMAGES_GROUP, recursive=True)
    out_dir = workdir / "refused"
    out_dir.mkdir()
    assert add_nsb(f"--input={params_only}", f"--output={out_dir / 'x.h5'}", cwd=workdir) != 0
    assert f"{params_only}: no DL1 images" in capsys.readouterr().err
    not_hdf5 = workdir / "not_hdf5.h5"
    not_hdf5.write_text("not an HDF5 file")
    assert add_nsb(f"--input={not_hdf5}", f"--output={out_dir / 'x.h5'}", cwd=workdir) != 0
    assert f"{not_hdf5}: not a readable HDF5 file" in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []
    assert add_nsb(f"--input={noisy}", f"--output={noisy}", "--overwrite", cwd=workdir) != 0
    assert "the output would replace the input" in capsys.readouterr().err


def test_no_overwrite_without_flag(mc, workdir):
    existing = workdir / "precious.h5"
    existing.write_bytes(b"precious")
    assert add_nsb(f"--input={mc}", f"--output={existing}", cwd=workdir) != 0
    assert existing.read_bytes() == b"precious"
    assert add_nsb(f"--input={mc}", f"--output={existing}", "--overwrite", cwd=workdir) == 0
    assert len(_events(existing)) == N_EVENTS
    assert [p.name for p in workdir.iterdir() if "partial" in p.name] == []


def test_unknown_option_is_refused():
    with pytest.raises(ToolConfigurationError, match=r"unknown configuration key\(s\) AddNSBTool\.typo"):
        AddNSBTool().run(["--AddNSBTool.typo=3"], raises=True)
