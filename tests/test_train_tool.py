"""ctapipe-train-gammalearn end to end: real DL1, bad inputs, resume after kill -9, DDP."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ctapipe.core import run_tool
from test_data_sim import simulated_dl1

from ctapipe_gammalearn.tools.train import TrainGammaPhysNet

LST = "LST_LST_LSTCam"
GAMMAS = ["gamma__history_meta_75.dl1.h5", "gamma__test_lasercal_v3.dl1.h5"]
PROTONS = ["proton__31aa856b_proton_run202_za20deg_azm0deg_North_test_layout_test-prod.dl1.h5"]


def train_args(signal_files, background_files, output_dir, *extra, cut="hillas_intensity > 0"):
    """Command line with a config file: a tiny network (these tests check the tool, not
    the physics) and a loose cut (the real files hold few events)."""
    config = output_dir.parent / f"{output_dir.name}.yaml"
    config.write_text(
        "TrainGammaPhysNet:\n"
        "  model_options: {channels: [4, 8], blocks: [1, 1], head_hidden: 8}\n"
        "TrainingQualityQuery:\n"
        f"  quality_criteria: [[cut, '{cut}']]\n"
    )
    args = [f"--signal={p}" for p in signal_files] + [f"--background={p}" for p in background_files]
    return args + [
        f"--config={config}",
        f"--output-dir={output_dir}",
        f"--provenance-log={output_dir.parent / (output_dir.name + '.provenance.log')}",
        "--no-progress",
        "--batch-size=8",
        *extra,
    ]


def real_args(shared_data, output_dir, *extra, **kwargs):
    dl1 = shared_data / "dl1"
    return train_args(
        [dl1 / f for f in GAMMAS], [dl1 / f for f in PROTONS], output_dir, f"--telescope-type={LST}", *extra, **kwargs
    )


@pytest.fixture(scope="module")
def real_run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "run"
    code = run_tool(TrainGammaPhysNet(), real_args(shared_data, out, "--epochs=2", "--seed=1"), raises=True)
    return code, out


def test_real_dl1_end_to_end(real_run):
    from ctapipe_gammalearn.runtime import load_model

    code, out = real_run
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [1, 2]
    for epoch in report["epochs"]:
        assert np.isfinite(epoch["train_loss"]) and np.isfinite(epoch["val_loss"])
        assert epoch["images_per_s"] > 0
    assert report["telescope_type"] == LST
    assert report["data"]["n_events"] == report["training"]["n_train"] + report["training"]["n_val"]
    assert report["validation"]["metrics"]["n_gamma"] > 0
    for name in ("loss.png", "validation_performance.png", f"gammaphysnet_{LST}.onnx", f"gammaphysnet_{LST}.pt"):
        assert (out / name).stat().st_size > 1000, name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    model = load_model(out / f"gammaphysnet_{LST}.onnx")
    assert model.card.telescope_type == LST
    assert model.card.trained
    assert model.card.training["n_train"] == report["training"]["n_train"]
    assert report["export"]["max_rel_diff"] < 1e-4


def test_checkpoint_contract(real_run):
    """The checkpoint holds what docs/architecture.md promises and export_checkpoint reads it."""
    from ctapipe_gammalearn.nn.export import export_checkpoint
    from ctapipe_gammalearn.training.checkpoint import load_checkpoint

    _, out = real_run
    checkpoint = load_checkpoint(out / "checkpoint_last.pt")
    for key in ("model_state", "model_config", "lattice", "telescope_type", "training", "optimizer_state",
                "scheduler_state", "rng_state", "epoch"):
        assert key in checkpoint
    assert checkpoint["epoch"] == 2
    exported = export_checkpoint(out / "checkpoint_best.pt", out.parent / "from_checkpoint")
    assert exported["max_rel_diff"] < 1e-4


class _RunsCode:
    """Pickles as a call of os.system: loading it unsafely would run a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("kind, message", [("code", "refusing to load"), ("old", "older ctapipe_gammalearn version")])
def test_resume_refuses_unsafe_checkpoint(kind, message, real_run, shared_data, tmp_path, capfd):
    """--resume never runs code from checkpoint_last.pt; one ERROR line names the file."""
    import torch

    out = tmp_path / "run"
    out.mkdir()
    last = out / "checkpoint_last.pt"
    payload = _RunsCode(tmp_path / "code_ran") if kind == "code" else np.zeros(3)
    torch.save({"model_state": {}, "lattice": {"coords": payload}}, last)
    cache = real_run[1] / "cache"  # the cache of the module run, to skip building it again
    args = real_args(shared_data, out, "--epochs=1", "--resume", f"--cache-dir={cache}")
    capfd.readouterr()
    assert run_tool(TrainGammaPhysNet(), args, raises=False) != 0
    stderr = capfd.readouterr().err
    errors = [line for line in stderr.splitlines() if "ERROR" in line and "--help" not in line]
    assert len(errors) == 1 and f"{last}: " in errors[0] and message in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert not (tmp_path / "code_ran").exists()
    assert not (out / "report.json").exists()


def test_refuses_to_overwrite(real_run, shared_data):
    _, out = real_run
    before = (out / "report.json").stat().st_mtime_ns
    code = run_tool(TrainGammaPhysNet(), real_args(shared_data, out, "--epochs=1"), raises=False)
    assert code != 0
    assert (out / "report.json").stat().st_mtime_ns == before


def bad_args(case, shared_data, out):
    dl1 = shared_data / "dl1"
    if case == "no_images":
        return train_args([shared_data / "dl1_params_only" / "aict_cta_gammas_diffuse.dl1.h5"], [dl1 / PROTONS[0]], out)
    if case == "mixed_geometry":
        return real_args(shared_data, out, f"--signal={dl1 / 'gamma__gamma_test.dl1.h5'}")
    if case == "no_events":
        return real_args(shared_data, out, cut="hillas_intensity < 0")
    return real_args(shared_data, out, "--TrainGammaPhysNet.no_such_option=3")


def assert_nothing_written(out):
    left = [p.name for p in out.iterdir() if p.name != "cache"] if out.exists() else []
    assert left == []
    if (out / "cache").exists():
        assert not list((out / "cache").iterdir())


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_images", "no DL1 images"),
        ("mixed_geometry", "different from"),
        ("no_events", "no LST_LST_LSTCam events left after cuts"),
        ("unknown_key", "unknown configuration key(s) TrainGammaPhysNet.no_such_option"),
    ],
)
def test_bad_input_error(case, message, shared_data, tmp_path, capfd):
    out = tmp_path / "run"
    code = run_tool(TrainGammaPhysNet(), bad_args(case, shared_data, out), raises=False)
    assert code != 0
    stderr = capfd.readouterr().err
    errors = [line for line in stderr.splitlines() if "ERROR" in line and "--help" not in line]
    assert len(errors) == 1 and message in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert_nothing_written(out)


@pytest.mark.slow
def test_bad_input_cli_exit(shared_data, tmp_path):
    """From the shell: non-zero exit, one ERROR line naming the file, no traceback."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ctapipe_gammalearn.tools.train", *map(str, bad_args("no_images", shared_data, out))]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line and "--help" not in line]
    assert len(errors) == 1 and "aict_cta_gammas_diffuse.dl1.h5: no DL1 images" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert_nothing_written(out)


# -- resume and DDP on a small simulated set ---------------------------------------------


@pytest.fixture(scope="module")
def sim_setup(tmp_path_factory):
    gammas, protons = simulated_dl1(tmp_path_factory)
    cache = tmp_path_factory.mktemp("sim_cache")
    base = tmp_path_factory.mktemp("sim_runs")

    def args(name, *extra):
        return train_args(gammas, protons, base / name, f"--cache-dir={cache}", "--seed=7", *extra,
                          cut="hillas_intensity > 20")

    return args, base


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted(sim_setup):
    args, base = sim_setup
    epochs = "--epochs=2"
    assert run_tool(TrainGammaPhysNet(), args("straight", epochs), raises=True) == 0
    straight = json.loads((base / "straight" / "report.json").read_text())

    cmd = [sys.executable, "-m", "ctapipe_gammalearn.tools.train", *map(str, args("killed", epochs))]
    proc = subprocess.Popen(cmd, cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = base / "killed" / "checkpoint_last.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run, not finished
    assert not (base / "killed" / "report.json").exists()

    assert run_tool(TrainGammaPhysNet(), args("killed", epochs, "--resume"), raises=True) == 0
    resumed = json.loads((base / "killed" / "report.json").read_text())
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    for a, b in zip(straight["epochs"], resumed["epochs"]):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-6, abs=1e-9)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6, abs=1e-9)
    assert resumed["validation"]["loss"] == pytest.approx(straight["validation"]["loss"], rel=1e-6, abs=1e-9)


DDP_ENV = dict(os.environ, OMP_NUM_THREADS="1")
DDP_EPOCHS = "--epochs=2"


def _same_losses(a, b):
    assert [e["epoch"] for e in b["epochs"]] == [e["epoch"] for e in a["epochs"]]
    for x, y in zip(a["epochs"], b["epochs"]):
        assert y["val_loss"] == pytest.approx(x["val_loss"], rel=1e-6, abs=1e-9)
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-6, abs=1e-9)


def _launcher_cmd(args, name, *extra):
    """The tool's own launcher: --signal stays --signal."""
    return [
        sys.executable, "-m", "ctapipe_gammalearn.tools.train", "--nproc-per-node=2",
        *map(str, args(name, DDP_EPOCHS, *extra)), "--device=cpu",
    ]


@pytest.fixture(scope="module")
def torchrun_report(sim_setup):
    args, base = sim_setup
    # full trait names: torchrun would take --signal for an abbreviation of its --signals-to-handle
    tool_args = [str(a).replace("--signal=", "--TrainGammaPhysNet.signal=") for a in args("ddp", DDP_EPOCHS)]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "ctapipe_gammalearn.tools.train", *tool_args, "--device=cpu",
    ]
    proc = subprocess.run(cmd, cwd=base, capture_output=True, text=True, timeout=600, env=DDP_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((base / "ddp" / "report.json").read_text())


@pytest.mark.slow
def test_ddp_two_cpu_processes(torchrun_report):
    report = torchrun_report
    assert report["training"]["world_size"] == 2
    assert np.isfinite(report["epochs"][0]["val_loss"])


@pytest.mark.slow
def test_launcher_two_processes_matches_torchrun(sim_setup, torchrun_report):
    args, base = sim_setup
    proc = subprocess.run(_launcher_cmd(args, "launched"), cwd=base, capture_output=True, text=True, timeout=600,
                          env=DDP_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((base / "launched" / "report.json").read_text())
    assert report["training"]["world_size"] == 2
    _same_losses(torchrun_report, report)
    assert report["validation"]["loss"] == pytest.approx(torchrun_report["validation"]["loss"], rel=1e-6, abs=1e-9)


@pytest.mark.slow
def test_launcher_resume_after_kill_matches_uninterrupted(sim_setup, torchrun_report):
    args, base = sim_setup
    # a new session: SIGKILL to the whole group is a crashed node, launcher and workers alike
    proc = subprocess.Popen(_launcher_cmd(args, "ddp_killed"), cwd=base, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=DDP_ENV, start_new_session=True)
    checkpoint = base / "ddp_killed" / "checkpoint_last.pt"
    deadline = time.monotonic() + 400
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (base / "ddp_killed" / "report.json").exists()

    resumed = subprocess.run(_launcher_cmd(args, "ddp_killed", "--resume"), cwd=base, capture_output=True, text=True,
                             timeout=600, env=DDP_ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same_losses(torchrun_report, json.loads((base / "ddp_killed" / "report.json").read_text()))


def test_launcher_options_are_split_from_the_tool_arguments():
    from ctapipe_gammalearn.tools.launch import split_launch_args, wants_launch

    options, rest = split_launch_args(["--nproc-per-node=4", "--signal=g.h5", "--nnodes", "1:2", "--epochs=3"])
    assert options.nproc_per_node == 4 and options.nnodes == "1:2"
    assert rest == ["--signal=g.h5", "--epochs=3"]
    assert wants_launch(options)
    plain, rest = split_launch_args(["--signal=g.h5"])
    assert not wants_launch(plain) and rest == ["--signal=g.h5"]


def test_training_options_are_the_tool_traits():
    """Every run setting is a trait of the tool, with the same default."""
    from ctapipe_gammalearn.training.run import TrainingOptions

    assert TrainingOptions.from_traits(TrainGammaPhysNet()) == TrainingOptions()
