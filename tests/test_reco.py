"""GammaPhysNetReconstructor in ctapipe-process and in the event loop."""

import subprocess
import sys
from importlib.resources import files

import astropy.units as u
import numpy as np
import pytest
from ctapipe.core import run_tool
from ctapipe.io import EventSource, HDF5Merger, TableLoader
from ctapipe.reco import Reconstructor
from ctapipe.tools.process import ProcessorTool
from tiny_models import TinyNet, lattice_of

from ctapipe_gammalearn.compat import PARTICLE_TYPE_KEY
from ctapipe_gammalearn.dl2 import CLASSIFIER_PREFIX, ENERGY_PREFIX, GEOMETRY_PREFIX
from ctapipe_gammalearn.nn.export import export_model
from ctapipe_gammalearn.reco import GammaPhysNetReconstructor
from ctapipe_gammalearn.tools.export import ExportTool

CONFIG = files("ctapipe_gammalearn") / "resources" / "gammalearn.yaml"
LST_RUN = "ab14a019_gamma_run000007_za40deg_azm180deg_South_subsystem_lsts_7.0.0_test"


@pytest.fixture(scope="module")
def lst_simtel(shared_data):
    return shared_data / "simtel" / "gamma" / f"{LST_RUN}.simtel.zst"


@pytest.fixture(scope="module")
def lst_dl1(shared_data):
    return shared_data / "dl1" / f"gamma__{LST_RUN}.dl1.h5"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("reco_models")


@pytest.fixture(scope="module")
def lst_model(lst_simtel, models_dir):
    """An untrained `small` γ-PhysNet for the file's LSTs, via the export tool."""
    argv = [
        "--init-random",
        f"--input={lst_simtel}",
        "--telescope-type=all",
        "--preset=small",
        f"--output={models_dir / 'random'}",
    ]
    assert run_tool(ExportTool(), argv, cwd=models_dir) == 0
    (model,) = sorted(models_dir.glob("random_*.onnx"))
    return model


@pytest.fixture(scope="module")
def other_camera_model(models_dir):
    """A model for CHEC, a camera the LST file does not have."""
    from ctapipe.instrument import CameraGeometry

    geometry = CameraGeometry.from_name("CHEC")
    net = TinyNet(geometry.n_pixels)
    return export_model(net, lattice_of(geometry), "SST_ASTRI_CHEC", models_dir / "chec")["onnx"]


def process(argv, cwd):
    argv = [f"--config={CONFIG}", "--no-progress", "--GammaPhysNetReconstructor.n_threads=1", *argv]
    return run_tool(ProcessorTool(), argv, cwd=cwd, raises=False)


def check_dl2(path):
    """Every image with intensity > 50 has valid γ-PhysNet energy, gammaness, direction."""
    loader = TableLoader(path, focal_length_choice="EQUIVALENT")
    n_checked = 0
    with loader:
        tables = loader.read_telescope_events_by_type(dl2=True, simulated=False)
        subarray_events = loader.read_subarray_events(dl2=True, simulated=False)
    for table in tables.values():
        bright = np.nan_to_num(table["hillas_intensity"], nan=0.0) > 50
        n_checked += bright.sum()
        for prefix in (ENERGY_PREFIX, CLASSIFIER_PREFIX, GEOMETRY_PREFIX):
            np.testing.assert_array_equal(table[f"{prefix}_tel_is_valid"], bright)
        energy = table[f"{ENERGY_PREFIX}_tel_energy"].quantity
        assert np.all(energy[bright] > 0 * u.TeV) and np.all(np.isnan(energy[~bright]))
        assert np.all(np.isfinite(table[f"{ENERGY_PREFIX}_tel_energy_uncert"][bright]))
        score = table[f"{CLASSIFIER_PREFIX}_tel_prediction"]
        assert np.all((score[bright] >= 0) & (score[bright] <= 1))
        alt = table[f"{GEOMETRY_PREFIX}_tel_alt"].quantity
        az = table[f"{GEOMETRY_PREFIX}_tel_az"].quantity
        assert np.all(np.abs(alt[bright]) <= 90 * u.deg) and np.all(np.isfinite(az[bright]))
        assert np.all(np.isfinite(table[f"{GEOMETRY_PREFIX}_tel_ang_distance_uncert"][bright]))
    # the stereo mean is there and valid where any telescope was
    for prefix in (ENERGY_PREFIX, CLASSIFIER_PREFIX, GEOMETRY_PREFIX):
        assert f"{prefix}_is_valid" in subarray_events.colnames
    return n_checked


def test_plugin_is_discovered():
    assert "GammaPhysNetReconstructor" in Reconstructor.non_abstract_subclasses()
    assert GammaPhysNetReconstructor.needs_atmosphere_profile is False


def test_process_simtel_writes_dl2(lst_simtel, lst_model, tmp_path):
    output = tmp_path / "lst.dl2.h5"
    argv = [
        f"--input={lst_simtel}",
        f"--output={output}",
        "--SimTelEventSource.focal_length_choice=EQUIVALENT",
        f"--GammaPhysNetReconstructor.model_paths={lst_model}",
    ]
    assert process(argv, tmp_path) == 0
    assert check_dl2(output) > 0


def test_process_dl1_with_images_writes_dl2(lst_dl1, lst_model, tmp_path):
    output = tmp_path / "lst_from_dl1.dl2.h5"
    argv = [
        f"--input={lst_dl1}",
        f"--output={output}",
        "--HDF5EventSource.focal_length_choice=EQUIVALENT",
        f"--GammaPhysNetReconstructor.model_paths={lst_model}",
    ]
    assert process(argv, tmp_path) == 0
    assert check_dl2(output) > 0


@pytest.fixture(scope="module")
def dl1_without_images(lst_dl1, models_dir):
    path = models_dir / "no_images.dl1.h5"
    with HDF5Merger(path, dl1_images=False, overwrite=True) as merger:
        merger(lst_dl1)
    return path


def _bad_case(name, lst_simtel, lst_dl1, lst_model, other_camera_model, no_images, tmp_path):
    simtel = [f"--input={lst_simtel}", "--SimTelEventSource.focal_length_choice=EQUIVALENT"]
    if name == "other camera":
        argv = simtel + [f"--GammaPhysNetReconstructor.model_paths={other_camera_model}"]
        return argv, "fits no telescope", other_camera_model
    if name in ("truncated", "corrupt"):
        bad = tmp_path / f"{name}.onnx"
        data = lst_model.read_bytes()
        bad.write_bytes(data[: len(data) // 3] if name == "truncated" else b"garbage" * 50)
        return simtel + [f"--GammaPhysNetReconstructor.model_paths={bad}"], "not a readable ONNX model", bad
    if name == "missing":
        missing = tmp_path / "missing.onnx"
        return simtel + [f"--GammaPhysNetReconstructor.model_paths={missing}"], "model file not found", missing
    if name == "no images":
        argv = [
            f"--input={no_images}",
            "--HDF5EventSource.focal_length_choice=EQUIVALENT",
            f"--GammaPhysNetReconstructor.model_paths={lst_model}",
        ]
        return argv, "--write-images", no_images
    if name == "unknown key":
        config = tmp_path / "typo.yaml"
        config.write_text(f"GammaPhysNetReconstructor:\n  model_pathz: [{lst_model}]\n")
        argv = simtel + [f"--config={config}", f"--GammaPhysNetReconstructor.model_paths={lst_model}"]
        return argv, "not recognized", "model_pathz"
    raise ValueError(name)


@pytest.mark.parametrize("name", ["other camera", "truncated", "corrupt", "missing", "no images", "unknown key"])
def test_bad_input_gives_clear_error_and_no_output(
    name, lst_simtel, lst_dl1, lst_model, other_camera_model, dl1_without_images, tmp_path, capfd
):
    argv, message, culprit = _bad_case(
        name, lst_simtel, lst_dl1, lst_model, other_camera_model, dl1_without_images, tmp_path
    )
    output = tmp_path / "out.dl2.h5"
    capfd.readouterr()
    code = process([*argv, f"--output={output}"], tmp_path)
    stderr = capfd.readouterr().err
    assert code != 0
    assert not output.exists()
    errors = [line for line in stderr.splitlines() if "ERROR" in line or "CRITICAL" in line]
    matching = [line for line in errors if message in line]
    assert matching, stderr[-3000:]
    assert getattr(culprit, "name", culprit) in matching[0]


def test_event_loop_fills_tel_and_stereo_containers(lst_dl1, lst_model):
    with EventSource(lst_dl1, focal_length_choice="EQUIVALENT") as source:
        subarray = source.subarray
        reco = GammaPhysNetReconstructor(subarray, model_paths=[str(lst_model)], n_threads=1)
        n_valid = 0
        for event in source:
            reco(event)
            valid = []
            for tel_id in event.trigger.tels_with_trigger:
                dl2 = event.dl2.tel[tel_id]
                intensity = event.dl1.tel[tel_id].parameters.hillas.intensity
                expected = bool(np.nan_to_num(intensity) > 50)
                energy = dl2.energy[ENERGY_PREFIX]
                assert energy.is_valid == expected
                assert getattr(dl2, PARTICLE_TYPE_KEY)[CLASSIFIER_PREFIX].is_valid == expected
                assert dl2.geometry[GEOMETRY_PREFIX].is_valid == expected
                assert energy.prefix == f"{ENERGY_PREFIX}_tel"
                if expected:
                    valid.append(tel_id)
            stereo = event.dl2.stereo
            assert sorted(stereo.energy[ENERGY_PREFIX].telescopes) == sorted(valid)
            assert stereo.geometry[GEOMETRY_PREFIX].is_valid == bool(valid)
            assert getattr(stereo, PARTICLE_TYPE_KEY)[CLASSIFIER_PREFIX].is_valid == bool(valid)
            n_valid += len(valid)
    assert n_valid > 0


def test_telescopes_without_model_are_invalid_not_fatal(shared_data, models_dir):
    """A mixed array with a model for one camera type only."""
    path = shared_data / "dl1" / "gamma__mono_trigger.dl1.h5"
    with EventSource(path, focal_length_choice="EQUIVALENT", max_events=3) as source:
        subarray = source.subarray
        lst = next(t for t in subarray.telescope_types if str(t).startswith("LST"))
        geometry = lst.camera.geometry
        model = export_model(TinyNet(geometry.n_pixels), lattice_of(geometry), str(lst), models_dir / "gamma_test_lst")[
            "onnx"
        ]
        reco = GammaPhysNetReconstructor(subarray, model_paths=[str(model)])
        n_without = n_with = 0
        for event in source:
            reco(event)
            for tel_id in event.trigger.tels_with_trigger:
                energy = event.dl2.tel[tel_id].energy[ENERGY_PREFIX]
                if str(subarray.tel[tel_id]) != str(lst):
                    assert not energy.is_valid and np.isnan(energy.energy)
                    n_without += 1
                else:
                    n_with += energy.is_valid
    assert n_without > 0 and n_with > 0


def test_reconstructor_runs_without_torch(lst_dl1, lst_model):
    code = f"""
import sys
class _NoTorch:  # any import of torch now fails, like on a machine without it
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")
sys.meta_path.insert(0, _NoTorch())
from ctapipe.io import EventSource
from ctapipe_gammalearn.reco import GammaPhysNetReconstructor
with EventSource({str(lst_dl1)!r}, focal_length_choice="EQUIVALENT") as source:
    reco = GammaPhysNetReconstructor(source.subarray, model_paths=[{str(lst_model)!r}])
    n = 0
    for event in source:
        reco(event)
        n += sum(event.dl2.tel[t].energy["GammaPhysNetEnergy"].is_valid for t in event.trigger.tels_with_trigger)
print("valid", n)
assert "torch" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split("valid")[-1]) > 0


@pytest.mark.slow
def test_process_every_simtel_file(shared_data, tmp_path):
    """An untrained `small` network per camera layout, on every real sim_telarray file."""
    import torch

    from ctapipe_gammalearn.lattice import Lattice
    from ctapipe_gammalearn.nn import GammaPhysNet

    exported = {}  # (fingerprint, size class) -> model, shared between files
    simtel_files = sorted((shared_data / "simtel").glob("*/*.simtel.*"))
    assert len(simtel_files) > 10
    for path in simtel_files:
        with EventSource(path, focal_length_choice="EQUIVALENT", max_events=1) as source:
            types = {str(t): t for t in source.subarray.telescope_types}
        models = set()
        for name, tel_type in sorted(types.items()):
            lattice = Lattice.from_geometry(tel_type.camera.geometry)
            key = (lattice.fingerprint, name.split("_")[0])
            if key not in exported:
                torch.manual_seed(len(exported))
                net = GammaPhysNet(lattice, preset="small")
                stem = tmp_path / f"model_{len(exported)}"
                exported[key] = export_model(net, lattice, name, stem)["onnx"]
            models.add(exported[key])
        output = tmp_path / f"{path.name}.dl2.h5"
        argv = [
            f"--input={path}",
            f"--output={output}",
            "--max-events=2",
            "--SimTelEventSource.focal_length_choice=EQUIVALENT",
        ] + [f"--GammaPhysNetReconstructor.model_paths={m}" for m in sorted(models)]
        assert process(argv, tmp_path) == 0, path.name
        check_dl2(output)


def _outputs(n, rng):
    return {
        "class_logits": rng.normal(size=(n, 2)).astype("f4"),
        "log10_energy": rng.normal(size=n).astype("f4"),
        "log10_energy_logvar": rng.normal(-3, 0.5, size=n).astype("f4"),
        "fov_offset": rng.normal(0, 1, size=(n, 2)).astype("f4"),
        "fov_offset_logvar": rng.normal(-4, 0.5, size=(n, 2)).astype("f4"),
        "impact": rng.normal(0, 100, size=(n, 2)).astype("f4"),
        "impact_logvar": rng.normal(6, 0.5, size=(n, 2)).astype("f4"),
    }


def test_dl2_columns_physics():
    from ctapipe.reco.reconstructor import ReconstructionProperty as P

    from ctapipe_gammalearn.dl2 import dl2_columns

    rng = np.random.default_rng(0)
    out = _outputs(6, rng)
    out["fov_offset"][0] = 0.0  # source at the camera centre: the pointing direction
    out["log10_energy"][1] = np.nan  # a broken output invalidates only that property
    valid = np.array([True, True, True, True, True, False])
    cols = dl2_columns(out, valid, 70 * u.deg, 20 * u.deg, 10 * u.m, -5 * u.m)

    energy = cols[P.ENERGY]
    np.testing.assert_allclose(energy["energy"][0].to_value(u.TeV), 10 ** out["log10_energy"][0], rtol=1e-6)
    sigma = np.exp(0.5 * out["log10_energy_logvar"][0])
    np.testing.assert_allclose(energy["energy_uncert"][0] / energy["energy"][0], np.log(10) * sigma, rtol=1e-6)
    np.testing.assert_array_equal(energy["is_valid"], [True, False, True, True, True, False])

    logits = out["class_logits"].astype("f8")
    expected = np.exp(logits[:, 0]) / np.exp(logits).sum(axis=1)
    np.testing.assert_allclose(cols[P.PARTICLE_TYPE]["prediction"][:5], expected[:5], rtol=1e-6)
    assert np.isnan(cols[P.PARTICLE_TYPE]["prediction"][5])

    geometry = cols[P.GEOMETRY]
    assert u.isclose(geometry["alt"][0], 70 * u.deg) and u.isclose(geometry["az"][0], 20 * u.deg)
    np.testing.assert_array_equal(geometry["is_valid"], valid)
    sigma = np.exp(0.5 * out["fov_offset_logvar"][2])
    np.testing.assert_allclose(geometry["ang_distance_uncert"][2].to_value(u.deg), np.hypot(*sigma), rtol=1e-6)
    np.testing.assert_allclose(geometry["core_x"][2].to_value(u.m), 10 + out["impact"][2, 0], rtol=1e-6)
    assert np.isnan(geometry["alt"][5])


def test_dl2_tables_use_ctapipe_column_names():
    from ctapipe.containers import ReconstructedGeometryContainer
    from ctapipe.reco.reconstructor import ReconstructionProperty as P

    from ctapipe_gammalearn.dl2 import columns_to_container, columns_to_table, dl2_columns

    cols = dl2_columns(_outputs(3, np.random.default_rng(1)), np.ones(3, bool), 60 * u.deg, 0 * u.deg, 0 * u.m, 0 * u.m)
    table = columns_to_table(P.GEOMETRY, cols[P.GEOMETRY])
    for name in ReconstructedGeometryContainer.fields:
        if name != "telescopes":
            assert f"{GEOMETRY_PREFIX}_tel_{name}" in table.colnames
    container = columns_to_container(P.GEOMETRY, cols[P.GEOMETRY], 1)
    assert container.prefix == f"{GEOMETRY_PREFIX}_tel" and container.is_valid is True
    assert u.isclose(container.alt, table[f"{GEOMETRY_PREFIX}_tel_alt"].quantity[1])
