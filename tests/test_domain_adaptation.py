"""Domain adaptation: gradient reversal, domain losses, the domain task in the trainer and the tool."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import tables
import torch
from ctapipe.core import run_tool
from test_data_sim import simulated_dl1
from test_train_tool import LST, assert_nothing_written, real_args, train_args

from ctapipe_gammalearn.training.domain import (
    DomainAdaptation,
    coral_loss,
    ganin_coefficient,
    grad_reverse,
    jdot_loss,
    mmd_loss,
)

# -- the building blocks ------------------------------------------------------------------


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(5, 3, requires_grad=True)
    weight = torch.randn(5, 3)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)  # identity forward
    (y * weight).sum().backward()
    assert torch.allclose(x.grad, -0.3 * weight)
    x.grad = None
    (grad_reverse(x, 2.0) * weight).sum().backward()
    assert torch.allclose(x.grad, -2.0 * weight)


def test_ganin_schedule():
    values = [ganin_coefficient(p, gamma=10.0, maximum=0.5) for p in np.linspace(0, 1, 11)]
    assert values[0] == 0.0
    assert all(b > a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(0.5, rel=1e-3)
    assert ganin_coefficient(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert ganin_coefficient(3.0) == ganin_coefficient(1.0)  # clipped progress


def _features(n=96, d=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen) @ torch.randn(d, d, generator=gen) * 0.5


def _shifted(x, shift):
    """The same features with mean and spread shifted by ``shift``."""
    return x * (1 + shift) + shift


def _jdot_features(source, target):
    """DeepJDOT's transport of the features alone (no label term)."""
    return jdot_loss(source, target, None, None, lam=0.0)


@pytest.mark.parametrize("loss", [coral_loss, mmd_loss, _jdot_features])
def test_statistical_domain_losses_zero_for_identical_and_grow_with_shift(loss):
    x = _features()
    assert float(loss(x, x.clone())) == pytest.approx(0.0, abs=1e-6)
    values = [float(loss(x, _shifted(x, s))) for s in (0.1, 0.3, 1.0, 2.0)]
    assert values[0] > 1e-6
    assert all(b > a for a, b in zip(values, values[1:])), values


def _fake_model(n_features=12):
    torch.manual_seed(0)
    classifier = torch.nn.Sequential(torch.nn.Linear(n_features, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return SimpleNamespace(classifier=classifier, keep_features=False)


def _trained_domain_loss(method, source, target, steps=150):
    """The domain classifier's loss after training it (alone) on fixed source/target features."""
    model = _fake_model(source.shape[1])
    term = DomainAdaptation(method, model, target_stream=None, total_steps=1, hidden=32)
    assert model.keep_features
    optimizer = torch.optim.Adam(term.parameters(), lr=1e-2)
    for _ in range(steps):
        logits = (model.classifier(source), model.classifier(target))
        loss = term.loss(source, target, *logits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(term.loss(source, target, model.classifier(source), model.classifier(target)))


@pytest.mark.parametrize("method", ["dann", "cdann"])
def test_adversarial_domain_loss_excess_zero_for_identical_and_grows_with_shift(method, single_torch_thread):
    """A domain classifier cannot beat chance (ln 2) on identical batches; the shift it
    learns to see lowers its loss: ln 2 - loss is zero without a shift and grows with it."""
    x = _features()
    excess = [math.log(2) - _trained_domain_loss(method, x, x.clone())]
    for shift in (0.01, 0.03, 0.1):
        excess.append(math.log(2) - _trained_domain_loss(method, x, _shifted(x, shift)))
    assert excess[0] == pytest.approx(0.0, abs=1e-3), excess
    assert excess[1] > 0.005 and all(b > a + 0.1 for a, b in zip(excess[1:], excess[2:])), excess


def test_jdot_pairs_by_features_and_labels():
    """The exact transport of identical batches is the identity; the label term pairs each
    source event with a target predicted in its class."""
    x = _features(n=16)
    classes = torch.tensor([0, 1] * 8)
    assert float(jdot_loss(x, x.clone(), classes, None, lam=0.0)) == pytest.approx(0.0, abs=1e-6)
    confident = torch.nn.functional.one_hot(classes, 2).float() * 10  # target j predicted as class j % 2
    agreeing = float(jdot_loss(x, x.clone(), classes, confident))
    flipped = float(jdot_loss(x, x.clone(), 1 - classes, confident))
    assert agreeing < 1e-3 < flipped


def test_reversal_reaches_the_features_and_not_the_head():
    """The head learns to separate the domains; the features get the reversed gradient."""
    model = _fake_model()
    term = DomainAdaptation("dann", model, target_stream=None, total_steps=1)
    source = _features().requires_grad_(True)
    target = _shifted(_features(seed=3), 1.0).requires_grad_(True)
    term.loss(source, target, coefficient=0.7).backward()
    reversed_grad = source.grad.clone()
    head_grad = [p.grad.clone() for p in term.parameters()]
    source.grad = None
    for p in term.parameters():
        p.grad = None
    plain = 0.5 * (
        torch.nn.functional.binary_cross_entropy_with_logits(term.head(source), torch.zeros(len(source)))
        + torch.nn.functional.binary_cross_entropy_with_logits(term.head(target), torch.ones(len(target)))
    )
    plain.backward()
    assert torch.allclose(reversed_grad, -0.7 * source.grad, atol=1e-6)
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(head_grad, term.parameters()))


# -- the domain task in the trainer -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_domain(lst1_subarray):
    """A tiny γ-PhysNet, a labelled synthetic source and a brighter, noisier unlabelled target."""
    from ctapipe_gammalearn.lattice import Lattice
    from ctapipe_gammalearn.nn.physnet import GammaPhysNet

    geometry = lst1_subarray.tel[1].camera.geometry
    lattice = Lattice.from_geometry(geometry)
    rng = np.random.default_rng(0)
    n, p = 24, geometry.n_pixels
    source = {
        "image": rng.exponential(3.0, (n, p)).astype(np.float16),
        "peak_time": rng.uniform(0, 30, (n, p)).astype(np.float16),
        "log10_energy": rng.uniform(-1, 1, n).astype(np.float32),
        "fov_offset": rng.normal(0, 1, (n, 2)).astype(np.float32),
        "impact": rng.normal(0, 100, (n, 2)).astype(np.float32),
        "particle": np.tile([0, 1], n // 2).astype(np.int8),
        "weight": np.ones(n, np.float32),
    }
    m = 13  # shorter than the source: recycled
    target = {
        "image": (rng.exponential(3.0, (m, p)) + rng.poisson(6.0, (m, p)) - 6.0).astype(np.float16),
        "peak_time": rng.uniform(0, 30, (m, p)).astype(np.float16),
    }

    def model():
        torch.manual_seed(0)
        return GammaPhysNet(lattice, preset="small", channels=(4, 8), blocks=(1, 1), head_hidden=8)

    return source, target, model


def make_domain_trainer(tiny_domain, tmp_path, method, balancing="uncertainty", epochs=2, amp_dtype=None):
    from ctapipe_gammalearn.training.balancing import make_balancer
    from ctapipe_gammalearn.training.domain import DOMAIN_TASK
    from ctapipe_gammalearn.training.loop import Trainer
    from ctapipe_gammalearn.training.losses import TASKS, MultitaskLoss
    from ctapipe_gammalearn.training.setup import make_optimizer
    from ctapipe_gammalearn.training.stream import BatchStream

    source, target, build = tiny_domain
    model = build()
    balancer = make_balancer(balancing, (*TASKS, DOMAIN_TASK))
    train = BatchStream(source, np.arange(16), batch_size=8, seed=1)
    val = BatchStream(source, np.arange(16, 24), batch_size=8, shuffle=False)
    target_stream = BatchStream(target, np.arange(len(target["image"])), batch_size=8, seed=2, labelled=False,
                                drop_last=True)
    term = DomainAdaptation(method, model, target_stream, total_steps=len(train) * epochs, hidden=16)
    optimizer = make_optimizer(model, balancer, 1e-3, 0.0)
    optimizer.add_param_group({"params": list(term.parameters()), "weight_decay": 0.0})
    return Trainer(
        model, MultitaskLoss("l1"), balancer, optimizer, train, val, extra_terms=[term], amp_dtype=amp_dtype,
        checkpoint_info={"model_config": model.config, "lattice": {}, "telescope_type": "LST", "training": {}},
        checkpoint_dir=tmp_path, progress=False,
    )


@pytest.mark.parametrize(
    "method, balancing",
    [("dann", "uncertainty"), ("cdann", "fixed"), ("coral", "gradnorm"), ("dan", "uncertainty"),
     ("deepjdot", "uncertainty")],
)
def test_domain_task_is_balanced_checkpointed_and_resumed(method, balancing, tiny_domain, tmp_path,
                                                          single_torch_thread):
    from ctapipe_gammalearn.training.checkpoint import load_checkpoint

    straight = make_domain_trainer(tiny_domain, tmp_path / "a", method, balancing)
    history = straight.fit(2)
    assert "domain" in history[-1]["task_weights"]
    assert all(np.isfinite(h["train_domain"]) for h in history)
    if balancing != "fixed":
        assert history[-1]["task_weights"]["domain"] != pytest.approx(1.0, abs=1e-5)
    assert not straight.model.keep_features or straight.model.domain_features is None
    assert not any("domain" in key or "head" in key for key in straight.model.state_dict())

    # stop after epoch 1, continue in a fresh trainer from the checkpoint: the same run
    first = make_domain_trainer(tiny_domain, tmp_path / "b", method, balancing)
    first.fit(1)
    checkpoint = load_checkpoint(tmp_path / "b" / "checkpoint_last.pt")
    (state,) = checkpoint["extra_terms_state"]
    assert int(state["step"]) == checkpoint["global_step"] == 2  # the schedule's position
    resumed = make_domain_trainer(tiny_domain, tmp_path / "b", method, balancing)
    resumed.load_state(checkpoint)
    for key, value in state.items():
        assert torch.equal(resumed.extra_terms[0].state_dict()[key], value)
    resumed_history = resumed.fit(2)
    for a, b in zip(history, resumed_history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
        assert b["train_domain"] == pytest.approx(a["train_domain"], rel=1e-6)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-6)


@pytest.mark.parametrize("method", ["dann", "coral"])
def test_domain_term_reads_only_the_learnt_features(method, tiny_domain, single_torch_thread):
    """The image moments (computed from the cleaned charge) never reach the domain loss."""
    from ctapipe_gammalearn.training.stream import BatchStream

    source, target, build = tiny_domain
    model = build().train()
    n = model.n_learnt_features
    assert 0 < n < model.classifier[0].in_features
    stream = BatchStream(target, np.arange(8), batch_size=8, shuffle=False, labelled=False)
    term = DomainAdaptation(method, model, stream, total_steps=1, hidden=16)
    if method == "dann":
        assert term.head.net[0].in_features == n
    seen = []
    loss = term.loss
    term.loss = lambda s, t, *args, **kwargs: seen.append((s.shape[1], t.shape[1])) or loss(s, t, *args, **kwargs)
    batch = {k: torch.as_tensor(v[:8]).float() for k, v in source.items() if k in ("image", "peak_time")}
    model(batch["image"], batch["peak_time"])
    out = term(model, batch, epoch=1, step=0)
    assert seen == [(n, n)] and torch.isfinite(out["domain"])


@pytest.mark.parametrize("method", ["dann", "coral"])
def test_source_and_target_share_one_forward_pass(method, tiny_domain, tmp_path, single_torch_thread):
    """Batch normalisation sees both domains together, as at inference: in training mode a
    pass over one domain alone is normalised by its own statistics, which hides its shift."""
    trainer = make_domain_trainer(tiny_domain, tmp_path, method, epochs=1)
    passes = []
    trainer.model.register_forward_pre_hook(lambda module, args: passes.append((module.training, len(args[0]))))
    history = trainer.fit(1)
    training = [n for is_training, n in passes if is_training]
    assert training and all(n == 8 + 8 for n in training)  # 8 source rows, then 8 target rows
    assert all(n == 8 for is_training, n in passes if not is_training)  # validation: source only
    assert np.isfinite(history[-1]["train_loss"]) and np.isfinite(history[-1]["train_domain"])

    # why: a brightness shift that a joint pass shows, separate passes hide
    source, _, build = tiny_domain
    model = build().train()
    image = torch.as_tensor(source["image"][:8]).float()
    peak_time = torch.as_tensor(source["peak_time"][:8]).float()
    brighter = 3.0 * image + 4.0
    n = model.n_learnt_features
    with torch.no_grad():
        joint = model.features(torch.cat([image, brighter]), torch.cat([peak_time, peak_time]))[0][:, :n]
        alone = model.features(image, peak_time)[0][:, :n], model.features(brighter, peak_time)[0][:, :n]
    gap_joint = (joint[:8].mean(0) - joint[8:].mean(0)).abs().mean()
    gap_alone = (alone[0].mean(0) - alone[1].mean(0)).abs().mean()
    assert gap_joint > 3 * gap_alone


def test_resume_with_another_method_is_refused(tiny_domain, tmp_path, single_torch_thread):
    from ctapipe_gammalearn.training.checkpoint import load_checkpoint

    make_domain_trainer(tiny_domain, tmp_path, "dann", epochs=1).fit(1)
    checkpoint = load_checkpoint(tmp_path / "checkpoint_last.pt")
    other = make_domain_trainer(tiny_domain, tmp_path / "other", "coral", epochs=1)
    with pytest.raises(ValueError, match="resume with the same --domain-adaptation"):
        other.load_state(checkpoint)
    plain = make_trainer_without_domain(tiny_domain, tmp_path / "plain")
    with pytest.raises(ValueError, match="holds 1 extra loss terms"):
        plain.load_state(checkpoint)


def make_trainer_without_domain(tiny_domain, tmp_path):
    from ctapipe_gammalearn.training.balancing import make_balancer
    from ctapipe_gammalearn.training.loop import Trainer
    from ctapipe_gammalearn.training.losses import TASKS, MultitaskLoss
    from ctapipe_gammalearn.training.setup import make_optimizer
    from ctapipe_gammalearn.training.stream import BatchStream

    source, _, build = tiny_domain
    model, balancer = build(), make_balancer("uncertainty", TASKS)
    return Trainer(model, MultitaskLoss("l1"), balancer, make_optimizer(model, balancer, 1e-3, 0.0),
                   BatchStream(source, np.arange(16), batch_size=8), progress=False)


def test_domain_task_under_bf16_autocast(tiny_domain, tmp_path, single_torch_thread):
    history = make_domain_trainer(tiny_domain, tmp_path, "dan", epochs=1, amp_dtype=torch.bfloat16).fit(1)
    assert np.isfinite(history[-1]["train_domain"]) and np.isfinite(history[-1]["train_loss"])


def test_target_is_recycled_in_a_seeded_order(tiny_domain, tmp_path):
    trainer = make_domain_trainer(tiny_domain, tmp_path, "coral")
    term = trainer.extra_terms[0]
    n = len(term.target_stream)  # 13 rows, whole batches of 8: one batch per cycle
    assert n == 1
    first, again = term.target_batch(0)["image"], term.target_batch(0)["image"]
    assert torch.equal(first, again)
    later = term.target_batch(5)["image"]
    assert later.shape == first.shape and not torch.equal(first, later)  # another cycle, another draw


# -- the training tool ----------------------------------------------------------------------


def noisy_copy(path, out, mean_pe, seed=0):
    """A copy of a DL1 file whose images carry extra Poisson light (pedestal-subtracted)."""
    shutil.copy(path, out)
    rng = np.random.default_rng(seed)
    with tables.open_file(out, "a") as h5:
        for table in h5.walk_nodes("/dl1/event/telescope/images", classname="Table"):
            image = table.col("image")
            table.modify_column(colname="image", column=(image + rng.poisson(mean_pe, image.shape) - mean_pe))
    return out


@pytest.fixture(scope="module")
def dann_setup(tmp_path_factory, single_torch_thread):
    """The uninterrupted DANN run, on one torch thread (the killed run's subprocess gets one too:
    float sums in another order would differ at 1e-5 after an epoch)."""
    gammas, protons = simulated_dl1(tmp_path_factory)
    base = tmp_path_factory.mktemp("dann_runs")
    target = noisy_copy(gammas[1], base / "target_noisy.dl1.h5", 8.0)
    cache = tmp_path_factory.mktemp("dann_cache")

    def args(name, *extra):
        return train_args(gammas, protons, base / name, f"--cache-dir={cache}", "--seed=3", "--epochs=2",
                          f"--target={target}", "--domain-adaptation=dann", *extra, cut="hillas_intensity > 20")

    from ctapipe_gammalearn.tools.train import TrainGammaPhysNet

    assert run_tool(TrainGammaPhysNet(), args("straight"), raises=True) == 0
    return args, base, target, gammas[1]


def test_dann_run_exports_the_model_without_domain_head(dann_setup):
    from ctapipe_gammalearn.modelcard import OUTPUT_NAMES
    from ctapipe_gammalearn.runtime import load_model
    from ctapipe_gammalearn.training.checkpoint import load_checkpoint

    _, base, target, _ = dann_setup
    out = base / "straight"
    report = json.loads((out / "report.json").read_text())
    assert all(np.isfinite(e["train_domain"]) for e in report["epochs"])
    assert "domain" in report["epochs"][-1]["task_weights"]
    assert report["target_data"]["n_events"] > 0
    model = load_model(out / f"gammaphysnet_{LST}.onnx")
    adaptation = model.card.training["domain_adaptation"]
    assert adaptation["method"] == "dann" and adaptation["reversal_schedule"]["gamma"] == 10.0
    assert [t["path"] for t in adaptation["targets"]] == [str(target)]
    assert adaptation["targets"][0]["n_events"] == report["target_data"]["n_events"]
    assert model.card.training["config"]["domain_adaptation"] == "dann"
    assert set(model.predict(*_example(model.card.n_pixels))) == set(OUTPUT_NAMES)
    checkpoint = load_checkpoint(out / "checkpoint_best.pt")
    assert checkpoint["extra_terms_state"][0]["head.net.0.weight"].dim() == 2
    assert not any("domain" in key for key in checkpoint["model_state"])


def _example(n_pixels):
    from ctapipe_gammalearn.nn.export import example_inputs

    return example_inputs(n_pixels, batch=2)


@pytest.mark.slow
def test_dann_resume_after_kill_matches_uninterrupted(dann_setup):
    args, base, _, _ = dann_setup
    straight = json.loads((base / "straight" / "report.json").read_text())
    cmd = [sys.executable, "-m", "ctapipe_gammalearn.tools.train", *map(str, args("killed"))]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the threads of the straight run (dann_setup)
    proc = subprocess.Popen(cmd, cwd=base, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = base / "killed" / "checkpoint_last.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (base / "killed" / "report.json").exists()

    from ctapipe_gammalearn.tools.train import TrainGammaPhysNet

    assert run_tool(TrainGammaPhysNet(), args("killed", "--resume"), raises=True) == 0
    resumed = json.loads((base / "killed" / "report.json").read_text())
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    for a, b in zip(straight["epochs"], resumed["epochs"]):
        for key in ("train_loss", "train_domain", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key


@pytest.mark.slow
def test_dann_under_ddp_two_cpu_processes(dann_setup):
    """The tool's launcher with two gloo workers: the domain task trains on every rank."""
    args, base, _, _ = dann_setup
    cmd = [sys.executable, "-m", "ctapipe_gammalearn.tools.train", "--nproc-per-node=2",
           *map(str, args("ddp")), "--device=cpu"]
    proc = subprocess.run(cmd, cwd=base, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((base / "ddp" / "report.json").read_text())
    assert report["training"]["world_size"] == 2
    assert report["training"]["domain_adaptation"]["method"] == "dann"
    assert all(np.isfinite(e["train_domain"]) and np.isfinite(e["val_loss"]) for e in report["epochs"])


def _one_error_line(capfd):
    stderr = capfd.readouterr().err
    errors = [line for line in stderr.splitlines() if "ERROR" in line and "--help" not in line]
    assert len(errors) == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    return errors[0]


@pytest.mark.parametrize("case", ["other_camera", "no_images", "no_target", "nsb_other_camera"])
def test_bad_target_is_one_error_line(case, shared_data, tmp_path, capfd):
    from ctapipe_gammalearn.tools.train import TrainGammaPhysNet

    out = tmp_path / "run"
    target = {
        "other_camera": shared_data / "dl1" / "gamma__gamma_test.dl1.h5",
        "nsb_other_camera": shared_data / "dl1" / "gamma__gamma_test.dl1.h5",
        "no_images": shared_data / "dl1_params_only" / "aict_cta_gammas_diffuse.dl1.h5",
        "no_target": None,
    }[case]
    if case == "nsb_other_camera":
        extra = [f"--nsb-match={target}"]
    else:
        extra = ["--domain-adaptation=dann"] + ([f"--target={target}"] if target else [])
    assert run_tool(TrainGammaPhysNet(), real_args(shared_data, out, *extra), raises=False) != 0
    error = _one_error_line(capfd)
    if case == "no_target":
        assert "--domain-adaptation dann needs --target files" in error
    else:
        message = "no DL1 images" if case == "no_images" else "differs from the training files'"
        assert f"{target}: " in error and message in error, error
    assert_nothing_written(out)


# -- matched NSB ----------------------------------------------------------------------------


def test_per_pixel_poisson_injection():
    from ctapipe_gammalearn.training.augment import Augmentation

    rate = np.tile([0.0, 4.0, 16.0], 10)
    augmentation = Augmentation(pixel_nsb_pe=rate)
    assert augmentation.active
    image = torch.zeros(4000, len(rate))
    noisy, _ = augmentation(image, image.clone(), torch.Generator().manual_seed(0))
    variance = noisy.var(dim=0).numpy()
    assert np.allclose(variance, rate, rtol=0.1, atol=1e-6)
    assert np.allclose(noisy.mean(dim=0).numpy(), 0.0, atol=0.2)  # pedestal-subtracted
    assert not Augmentation(pixel_nsb_pe=np.zeros(5)).active
    with pytest.raises(ValueError):
        Augmentation(pixel_nsb_pe=-rate)


def test_nsb_match_estimates_the_missing_poisson_light(dann_setup):
    """The target is a copy of a source file with Poisson(8 p.e.) added: the estimate finds ~8 p.e."""
    from ctapipe_gammalearn.training.nsb_match import match_nsb

    _, _, target, original = dann_setup
    extra, record = match_nsb([target], [original], 1855)
    assert extra.shape == (1855,) and np.all(extra >= 0)
    assert 6.5 < record["extra_poisson_pe"]["median"] < 9.5, record["extra_poisson_pe"]
    assert record["target_pixel_std_pe"]["median"] > 2 * record["source_pixel_std_pe"]["median"]
    assert record["target_files"][0]["path"] == str(target)
