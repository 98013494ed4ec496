"""ctapipe-apply-gammalearn: batched inference writing the same DL2 as the event loop."""

from importlib.resources import files

import astropy.units as u
import numpy as np
import pytest
import tables
from astropy.table import Table, join
from ctapipe.core import run_tool
from ctapipe.io import HDF5Merger, TableLoader, write_table
from ctapipe.tools.process import ProcessorTool
from tiny_models import TinyNet, lattice_of

from ctapipe_gammalearn.dl2 import CLASSIFIER_PREFIX, ENERGY_PREFIX, GEOMETRY_PREFIX
from ctapipe_gammalearn.nn.export import export_model
from ctapipe_gammalearn.tools.apply import ApplyGammaPhysNet

CONFIG = files("ctapipe_gammalearn") / "resources" / "gammalearn.yaml"
KEYS = ["obs_id", "event_id", "tel_id"]


@pytest.fixture(scope="module")
def dl1_file(shared_data):
    """2 array events on 8 telescopes, LSTs and NectarCams: few HDF5 tables, fast."""
    return (
        shared_data
        / "dl1"
        / "gamma__01a5ccb0_gamma_diffuse_run000010_za20deg_azm000deg_North_alpha_6.0.0_test_file.dl1.h5"
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("apply")


@pytest.fixture(scope="module")
def models(dl1_file, workdir):
    """Tiny contract networks, one per telescope type (the paths, not the network, are under test)."""
    with TableLoader(dl1_file, focal_length_choice="EQUIVALENT") as loader:
        types = {str(t): t for t in loader.subarray.telescope_types}  # same name may occur twice
    paths = []
    for i, tel_type in enumerate(types.values()):
        geometry = tel_type.camera.geometry
        net = TinyNet(geometry.n_pixels, seed=i)
        paths.append(export_model(net, lattice_of(geometry), str(tel_type), workdir / f"model_{i}")["onnx"])
    return paths


def apply(argv, cwd):
    return run_tool(ApplyGammaPhysNet(), ["--no-progress", "--n-threads=1", *argv], cwd=cwd, raises=False)


@pytest.fixture(scope="module")
def batched(dl1_file, models, workdir):
    output = workdir / "batched.dl2.h5"
    argv = [f"--config={CONFIG}", f"--input={dl1_file}", f"--output={output}", "--batch-size=3"]
    assert apply(argv + [f"--model={m}" for m in models], workdir) == 0
    return output


@pytest.fixture(scope="module")
def per_event(dl1_file, models, workdir):
    output = workdir / "per_event.dl2.h5"
    argv = [
        f"--config={CONFIG}",
        "--no-progress",
        f"--input={dl1_file}",
        f"--output={output}",
        "--HDF5EventSource.focal_length_choice=EQUIVALENT",
        "--GammaPhysNetReconstructor.n_threads=1",
    ] + [f"--GammaPhysNetReconstructor.model_paths={m}" for m in models]
    assert run_tool(ProcessorTool(), argv, cwd=workdir, raises=False) == 0
    return output


def _read(path):
    with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
        return (
            loader.read_telescope_events(dl2=True, simulated=False, pointing=False),
            loader.read_subarray_events(dl2=True, simulated=False),
        )


def _compare(a, b, column):
    x, y = a[column], b[column]
    if column.endswith("is_valid") or column.endswith("telescopes"):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=column)
        return
    np.testing.assert_allclose(
        u.Quantity(x).value, u.Quantity(y).to_value(u.Quantity(x).unit), rtol=1e-5, atol=1e-6, err_msg=column
    )


def test_batched_tool_agrees_with_event_loop(batched, per_event):
    tel_a, stereo_a = _read(batched)
    tel_b, stereo_b = _read(per_event)
    assert len(tel_a) == len(tel_b) > 0
    joined = join(tel_a, tel_b, keys=KEYS, table_names=["a", "b"])
    assert len(joined) == len(tel_a)
    columns = [
        f"{ENERGY_PREFIX}_tel_energy",
        f"{ENERGY_PREFIX}_tel_energy_uncert",
        f"{ENERGY_PREFIX}_tel_is_valid",
        f"{CLASSIFIER_PREFIX}_tel_prediction",
        f"{CLASSIFIER_PREFIX}_tel_is_valid",
        f"{GEOMETRY_PREFIX}_tel_alt",
        f"{GEOMETRY_PREFIX}_tel_az",
        f"{GEOMETRY_PREFIX}_tel_ang_distance_uncert",
        f"{GEOMETRY_PREFIX}_tel_core_x",
        f"{GEOMETRY_PREFIX}_tel_is_valid",
    ]
    a = Table({c: joined[f"{c}_a"] for c in columns})
    b = Table({c: joined[f"{c}_b"] for c in columns})
    assert a[f"{ENERGY_PREFIX}_tel_is_valid"].sum() > 0
    for column in columns:
        _compare(a, b, column)

    stereo = join(stereo_a, stereo_b, keys=["obs_id", "event_id"], table_names=["a", "b"])
    assert len(stereo) == len(stereo_b)
    for column in [
        f"{ENERGY_PREFIX}_energy",
        f"{ENERGY_PREFIX}_is_valid",
        f"{ENERGY_PREFIX}_telescopes",
        f"{CLASSIFIER_PREFIX}_prediction",
        f"{GEOMETRY_PREFIX}_alt",
        f"{GEOMETRY_PREFIX}_az",
        f"{GEOMETRY_PREFIX}_is_valid",
    ]:
        _compare(Table({column: stereo[f"{column}_a"]}), Table({column: stereo[f"{column}_b"]}), column)


def test_input_content_is_kept(dl1_file, models, workdir):
    # an input with another reconstructor's DL2 already in it
    source = workdir / "with_hillas.h5"
    with HDF5Merger(source, overwrite=True) as merger:
        merger(dl1_file)
    marker = Table({"obs_id": [1], "event_id": [1], "HillasReconstructor_alt": [70.0] * u.deg})
    write_table(marker, source, "/dl2/event/subarray/geometry/HillasReconstructor")

    output = workdir / "kept.dl2.h5"
    assert apply([f"--input={source}", f"--output={output}"] + [f"--model={m}" for m in models], workdir) == 0
    with tables.open_file(source) as before, tables.open_file(output) as after:
        for node in before.walk_nodes("/", "Table"):
            assert node._v_pathname in after, node._v_pathname
            assert len(after.get_node(node._v_pathname)) == len(node)
        assert f"/dl2/event/telescope/energy/{ENERGY_PREFIX}" in after


def test_existing_output_needs_overwrite(dl1_file, models, batched, workdir, capfd):
    before = batched.stat().st_mtime_ns
    argv = [f"--input={dl1_file}", f"--output={batched}"] + [f"--model={m}" for m in models]
    assert apply(argv, workdir) != 0
    assert "exists" in capfd.readouterr().err
    assert batched.stat().st_mtime_ns == before
    assert apply(argv + ["--overwrite"], workdir) == 0
    assert _read(batched)[0][f"{ENERGY_PREFIX}_tel_is_valid"].sum() > 0


@pytest.fixture(scope="module")
def no_images(dl1_file, workdir):
    path = workdir / "no_images.dl1.h5"
    with HDF5Merger(path, dl1_images=False, overwrite=True) as merger:
        merger(dl1_file)
    return path


@pytest.mark.parametrize("case", ["no images", "other camera", "truncated model", "missing input"])
def test_bad_input_clear_error_no_output(case, dl1_file, no_images, models, workdir, tmp_path, capfd, shared_data):
    input_url, model_list, expected = dl1_file, models, None
    if case == "no images":
        input_url, expected = no_images, "--write-images"
    elif case == "other camera":
        # LST-only file: the NectarCam model fits none of its telescopes
        input_url = shared_data / "dl1" / "gamma__test_lasercal_v3.dl1.h5"
        expected = "fits no telescope"
    elif case == "truncated model":
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(models[0].read_bytes()[:1000])
        model_list, expected = [bad], "not a readable ONNX model"
    elif case == "missing input":
        input_url, expected = tmp_path / "nothing.h5", "input file not found"
    output = tmp_path / "out.h5"
    capfd.readouterr()
    assert apply([f"--input={input_url}", f"--output={output}"] + [f"--model={m}" for m in model_list], tmp_path) != 0
    err = capfd.readouterr().err
    assert expected in err, err[-2000:]
    assert list(tmp_path.glob("*out.h5*")) == []


def test_one_event_per_chunk_agrees_with_event_loop(dl1_file, models, per_event, workdir):
    output = workdir / "chunked.dl2.h5"
    argv = [f"--config={CONFIG}", f"-i={dl1_file}", f"-o={output}", "--chunk-size=1"]
    assert apply(argv + [f"-m={m}" for m in models], workdir) == 0
    (tel_a, stereo_a), (tel_b, stereo_b) = _read(output), _read(per_event)
    tel = join(tel_a, tel_b, keys=KEYS, table_names=["a", "b"])
    stereo = join(stereo_a, stereo_b, keys=["obs_id", "event_id"], table_names=["a", "b"])
    assert len(tel) == len(tel_b) and len(stereo) == len(stereo_b)
    pairs = [(tel, f"{ENERGY_PREFIX}_tel_energy"), (tel, f"{GEOMETRY_PREFIX}_tel_is_valid")]
    pairs += [(stereo, f"{ENERGY_PREFIX}_energy"), (stereo, f"{GEOMETRY_PREFIX}_telescopes")]
    for joined, column in pairs:
        _compare(Table({column: joined[f"{column}_a"]}), Table({column: joined[f"{column}_b"]}), column)


@pytest.mark.parametrize("configured, expected", [([], "1"), (["--GammaPhysNetReconstructor.spin_threads=False"], "0")])
def test_batched_tool_spins_unless_configured(dl1_file, models, workdir, configured, expected):
    """The batched tool lets onnxruntime's threads spin; the event loop's default stays off."""
    argv = [f"--input={dl1_file}", f"--output={workdir / 'spin.dl2.h5'}", "--overwrite", *configured]
    with ApplyGammaPhysNet() as tool:  # the tool's context closes what setup opened
        tool.initialize(argv=argv + [f"--model={m}" for m in models])
        tool.setup()
        options = tool.reconstructor.runtimes[0].session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == expected
