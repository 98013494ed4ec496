"""ctapipe-gammalearn-simulate writes standard, deterministic, complete ctapipe DL1 files."""

import astropy.units as u
import numpy as np
import pytest
from ctapipe.core import run_tool
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import TableLoader, read_table

from ctapipe_gammalearn.tools.simulate import SimulateTool

GAMMA_ARGS = [
    "--particle=gamma",
    "--energy-min=0.1",
    "--energy-max=10",
    "--core-max=250",
    "--viewcone-max=1",
    "--no-progress",
]


def _simulate(path, *args, n_events=12):
    return run_tool(
        SimulateTool(), argv=[f"--output={path}", f"--n-events={n_events}", *args], cwd=path.parent, raises=False
    )


@pytest.fixture(scope="module")
def gamma_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "gamma.dl1.h5"
    assert _simulate(path, *GAMMA_ARGS, "--seed=11", "--workers=1") == 0
    return path


def _event_tables(path):
    with TableLoader(path) as loader:
        return loader.read_telescope_events(
            dl1_images=True, dl1_parameters=True, simulated=True, true_images=True, observation_info=True
        )


def test_file_is_standard_dl1(gamma_file):
    events = _event_tables(gamma_file)
    assert len(events) == 12
    for column in (
        "image", "peak_time", "image_mask", "hillas_intensity", "hillas_width", "timing_slope",
        "leakage_intensity_width_2", "concentration_cog", "morphology_n_pixels", "intensity_std",
        "true_energy", "true_alt", "true_az", "true_core_x", "true_x_max", "true_shower_primary_id",
        "true_impact_distance", "true_image", "subarray_pointing_lat", "subarray_pointing_lon",
        "subarray_pointing_frame",
    ):
        assert column in events.colnames, column
    assert events["image"].shape == (12, 1855)
    assert np.all(events["true_shower_primary_id"] == 0)
    assert np.all((events["true_energy"] >= 0.1 * u.TeV) & (events["true_energy"] <= 10 * u.TeV))
    assert np.all(events["true_impact_distance"] < 260 * u.m)
    # images were parametrised: most triggered showers survive cleaning
    assert np.sum(np.isfinite(events["hillas_intensity"])) >= 8
    assert np.all(events["true_image"].sum(axis=1) == events["true_image_sum"])

    subarray = SubarrayDescription.from_hdf(gamma_file)
    assert subarray.tel[1].camera.name == "LSTCam"
    assert subarray.tel[1].optics.equivalent_focal_length.to_value(u.m) == pytest.approx(28.0)


def test_simulation_configuration(gamma_file):
    config = read_table(gamma_file, "/configuration/simulation/run")
    assert len(config) == 1
    assert config["energy_range_min"].quantity[0] == 0.1 * u.TeV
    assert config["energy_range_max"].quantity[0] == 10 * u.TeV
    assert config["spectral_index"][0] == -2.0
    assert config["max_scatter_range"].quantity[0] == 250 * u.m
    assert config["max_viewcone_radius"].quantity[0] == 1 * u.deg
    assert config["diffuse"][0]
    histogram = read_table(gamma_file, "/simulation/service/shower_distribution")
    n_thrown = config["n_showers"][0]
    # every thrown shower is counted, triggered or not
    assert n_thrown > 12
    assert histogram["n_entries"][0] == n_thrown
    assert histogram["histogram"][0].sum() == n_thrown
    blocks = read_table(gamma_file, "/configuration/observation/observation_block")
    assert blocks["subarray_pointing_lat"].quantity[0].to_value(u.deg) == pytest.approx(70.0)


def test_same_seed_gives_identical_data_with_any_number_of_workers(tmp_path, monkeypatch):
    from ctapipe_gammalearn.simulation import source

    # small batches, so that the 12 events come from several batches simulated in parallel
    monkeypatch.setattr(source, "BATCH_SIZE", 4)
    paths = {name: tmp_path / f"{name}.dl1.h5" for name in ("serial", "parallel", "other")}
    assert _simulate(paths["serial"], *GAMMA_ARGS, "--seed=11", "--workers=1") == 0
    assert _simulate(paths["parallel"], *GAMMA_ARGS, "--seed=11", "--workers=2") == 0
    assert _simulate(paths["other"], *GAMMA_ARGS, "--seed=12", "--workers=1") == 0
    a, b, c = (_event_tables(p) for p in paths.values())
    for column in (
        "event_id", "image", "peak_time", "true_image", "true_energy", "true_core_x", "hillas_intensity", "time",
        "timing_slope", "timing_deviation",
    ):
        np.testing.assert_array_equal(np.asarray(a[column]), np.asarray(b[column]))
    assert not np.array_equal(np.asarray(a["true_energy"]), np.asarray(c["true_energy"]))
    n_thrown = [read_table(paths[k], "/configuration/simulation/run")["n_showers"][0] for k in ("serial", "parallel")]
    assert n_thrown[0] == n_thrown[1] > 8  # three batches or more
    hists = [
        read_table(paths[k], "/simulation/service/shower_distribution")["histogram"][0] for k in ("serial", "parallel")
    ]
    np.testing.assert_array_equal(*hists)
    assert hists[0].sum() == n_thrown[0]


def test_no_overwrite_without_flag(gamma_file, tmp_path):
    path = tmp_path / "exists.dl1.h5"
    path.write_bytes(b"precious")
    assert _simulate(path, *GAMMA_ARGS, "--seed=1", n_events=1) != 0
    assert path.read_bytes() == b"precious"
    assert _simulate(path, *GAMMA_ARGS, "--seed=1", "--overwrite", n_events=1) == 0
    assert len(_event_tables(path)) == 1


def test_bad_settings_leave_no_output(tmp_path, capsys):
    path = tmp_path / "bad.dl1.h5"
    assert _simulate(path, *GAMMA_ARGS, "--energy-min=5", "--energy-max=1") != 0
    assert "energy_min" in capsys.readouterr().err
    assert [p for p in tmp_path.iterdir() if ".h5" in p.name] == []


def test_subarray_from_file(shared_data, tmp_path):
    # 4 LSTs and 15 NectarCam MSTs: a mixed array
    source_file = shared_data / "dl1" / "gamma__history_meta_75.dl1.h5"
    path = tmp_path / "stereo.dl1.h5"
    args = ["--particle=gamma", "--seed=3", "--energy-min=1", "--energy-max=5", "--core-max=150", "--no-progress"]
    # a small batch: 256 bright showers on 19 telescopes would cost minutes for 3 events
    batch = "--AirShowerSimEventSource.showers_per_batch=16"
    assert _simulate(path, *args, batch, f"--subarray={source_file}", n_events=3) == 0
    original = SubarrayDescription.read(source_file, focal_length_choice="EQUIVALENT")
    written = SubarrayDescription.from_hdf(path, focal_length_choice="EQUIVALENT")
    assert set(written.tel) == set(original.tel)
    trigger = read_table(path, "/dl1/event/subarray/trigger")
    assert len(trigger) == 3
    # bright showers close to the array centre trigger several telescopes (stereo)
    assert max(np.count_nonzero(t) for t in trigger["tels_with_trigger"]) >= 2


def test_event_source_plugin():
    from ctapipe.io import EventSource

    source = EventSource.from_name("AirShowerSimEventSource", n_events=1, seed=0)
    assert source.is_simulation
    assert not source.is_compatible("any_file.simtel.zst")
    assert source.subarray.tel[1].camera.name == "LSTCam"


def test_terminated_parallel_run_leaves_nothing(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "terminated.dl1.h5"
    cmd = [
        sys.executable,
        "-m",
        "ctapipe_gammalearn.tools.simulate",
        *GAMMA_ARGS,
        "--workers=2",
        "--n-events=100000",
        f"--output={path}",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*.partial.h5")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob("*.partial.h5")), "the run never started writing"
    time.sleep(2.0)  # well into the event loop, workers busy
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    # ctapipe's provenance log is all that stays: no output, no partial file
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".provenance.log")] == []
