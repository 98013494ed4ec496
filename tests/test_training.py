"""Losses, task balancing, metrics, checkpoints and the epoch loop."""

import math

import numpy as np
import pytest
import torch

from ctapipe_gammalearn.training.balancing import FixedWeights, GradNorm, UncertaintyWeighting, make_balancer
from ctapipe_gammalearn.training.checkpoint import (
    CHECKPOINT_BEST,
    CHECKPOINT_LAST,
    Keys,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ctapipe_gammalearn.training.losses import TASKS, MultitaskLoss, disp_loss
from ctapipe_gammalearn.training.metrics import binned_metrics, summary_metrics


def make_batch(n=8, gamma_fraction=0.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n_gamma = int(n * gamma_fraction)
    return {
        "particle": torch.tensor([0] * n_gamma + [1] * (n - n_gamma)),
        "log10_energy": torch.randn(n, generator=gen),
        "fov_offset": torch.randn(n, 2, generator=gen),
        "impact": 100 * torch.randn(n, 2, generator=gen),
        "weight": torch.ones(n),
    }


def perfect_outputs(batch, logvar=0.0):
    n = len(batch["particle"])
    logits = torch.nn.functional.one_hot(batch["particle"], 2).float() * 20
    return (
        logits,
        batch["log10_energy"].clone(),
        torch.full((n,), logvar),
        batch["fov_offset"].clone(),
        torch.full((n, 2), logvar),
        batch["impact"].clone(),
        torch.full((n, 2), logvar),
    )


def test_loss_zero_for_perfect_and_scaled_units():
    batch = make_batch()
    l1 = MultitaskLoss("l1")(perfect_outputs(batch), batch)
    assert all(float(l1[t]) < 1e-6 for t in TASKS)
    # 100 m impact error == 1 normalised unit; 0.5 deg direction error == 0.5
    out = list(perfect_outputs(batch))
    out[5] = out[5] + 100.0
    out[3] = out[3] + 0.5
    l1 = MultitaskLoss("l1")(out, batch)
    assert float(l1["impact"]) == pytest.approx(1.0)
    assert float(l1["direction"]) == pytest.approx(0.5)


def test_l1_laplace_teaches_the_prediction_whatever_the_variance():
    """The prediction's gradient does not shrink where the predicted variance is large;
    the log-variance is still pulled to the Laplace optimum var = 2 r^2."""
    batch = make_batch()
    loss = MultitaskLoss("l1_laplace", conditional=False)
    grads = []
    for logvar in (-3.0, 3.0):
        out = list(perfect_outputs(batch, logvar=logvar))
        out[1] = (out[1] + 0.3).requires_grad_(True)
        loss(out, batch)["energy"].backward()
        grads.append(out[1].grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    out = list(perfect_outputs(batch))
    out[1] = out[1] + 0.3
    values = {}
    best = math.log(2 * 0.3**2)
    for logvar in (-5.0, best, 2.0):
        out[2] = torch.full_like(out[2], logvar)
        values[logvar] = float(loss(out, batch)["energy"])
    assert values[best] < min(values[-5.0], values[2.0])
    assert values[best] == pytest.approx(0.3 + math.log(0.3) + 1)


def test_disp_loss_learns_magnitude_and_sign_separately():
    """|disp| is scored whatever the sign, the sign by cross-entropy; protons do not count."""
    batch = make_batch(n=4, gamma_fraction=0.5)
    axis = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]])
    true_disp = torch.tensor([0.7, -0.4, 1.2, 0.3])
    centroid = torch.randn(4, 2)
    batch["fov_offset"] = centroid + true_disp.unsqueeze(1) * axis
    right = {
        "centroid": centroid,
        "axis": axis,
        "disp_magnitude": true_disp.abs(),
        "disp_sign_logit": 30 * true_disp.sign(),
    }
    assert torch.all(disp_loss(right, batch["fov_offset"]) < 1e-6)
    wrong_sign = dict(right, disp_sign_logit=-right["disp_sign_logit"])
    per_event = disp_loss(wrong_sign, batch["fov_offset"])
    assert torch.all(per_event > 10)  # 30 nats per event: the magnitude term stays at zero
    short = dict(right, disp_magnitude=right["disp_magnitude"] - 0.25)
    torch.testing.assert_close(disp_loss(short, batch["fov_offset"]), torch.full((4,), 0.25), atol=1e-5, rtol=0)
    # added to the direction task, on gammas only (the last two events are protons)
    loss = MultitaskLoss("l1")
    outputs = list(perfect_outputs(batch))
    plain = float(loss(outputs, batch)["direction"])
    protons_wrong = dict(short, disp_magnitude=torch.cat([right["disp_magnitude"][:2], short["disp_magnitude"][2:]]))
    assert float(loss(outputs, batch, direction_terms=protons_wrong)["direction"]) == pytest.approx(plain, abs=1e-5)
    assert float(loss(outputs, batch, direction_terms=short)["direction"]) == pytest.approx(plain + 0.25, abs=1e-5)


def test_gaussian_nll_trains_the_log_variance():
    """The NLL is minimal where the predicted variance equals the squared error."""
    batch = make_batch()
    loss = MultitaskLoss("gaussian_nll", conditional=False)
    out = list(perfect_outputs(batch))
    out[1] = out[1] + 0.3  # energy error 0.3 in log10 E
    values = {}
    for logvar in (-6.0, 2 * math.log(0.3), 2.0):
        out[2] = torch.full_like(out[2], logvar)
        values[logvar] = float(loss(out, batch)["energy"])
    assert values[2 * math.log(0.3)] < min(values[-6.0], values[2.0])
    assert values[2 * math.log(0.3)] == pytest.approx(0.5 * (2 * math.log(0.3) + 1))


def test_laplace_nll_is_minimal_at_the_laplace_variance_and_linear_in_the_error():
    """Laplace NLL ln b + |r|/b is minimal at b = |r|, i.e. var = 2 r^2; it grows linearly with |r|."""
    batch = make_batch()
    loss = MultitaskLoss("laplace_nll", conditional=False)
    out = list(perfect_outputs(batch))
    best = math.log(2 * 0.3**2)
    values = {}
    out[1] = out[1] + 0.3
    for logvar in (-5.0, best, 2.0):
        out[2] = torch.full_like(out[2], logvar)
        values[logvar] = float(loss(out, batch)["energy"])
    assert values[best] < min(values[-5.0], values[2.0])
    assert values[best] == pytest.approx(math.log(0.3) + 1)
    # at a fixed variance, doubling the error doubles the residual term (Gaussian: 4x)
    out[2] = torch.full_like(out[2], 0.0)
    base = float(loss(out, batch)["energy"])
    out[1] = out[1] + 0.3
    doubled = float(loss(out, batch)["energy"])
    log_b = 0.5 * (0.0 - math.log(2.0))
    assert doubled - log_b == pytest.approx(2 * (base - log_b))


def test_conditional_ignores_protons():
    batch = make_batch(gamma_fraction=0.5)
    out = list(perfect_outputs(batch))
    out[1] = out[1] + (batch["particle"] == 1).float() * 5.0  # bad energies only for protons
    assert float(MultitaskLoss("l1", conditional=True)(out, batch)["energy"]) == pytest.approx(0.0)
    assert float(MultitaskLoss("l1", conditional=False)(out, batch)["energy"]) == pytest.approx(2.5)
    # a batch of protons only: zero regression loss, still differentiable
    protons = make_batch(gamma_fraction=0.0)
    out = [o.clone().requires_grad_(True) for o in perfect_outputs(protons)]
    losses = MultitaskLoss("gaussian_nll")(out, protons)
    assert float(losses["energy"].detach()) == 0.0
    sum(losses.values()).backward()
    assert out[0].grad is not None


def test_class_weights_enter_the_loss():
    batch = make_batch(gamma_fraction=0.5)
    out = list(perfect_outputs(batch))
    out[0] = torch.zeros_like(out[0])  # uninformative logits: CE = ln 2 for every event
    out[0][batch["particle"] == 1] = torch.tensor([5.0, -5.0])  # protons badly wrong
    even = float(MultitaskLoss()(out, batch)["particle"])
    batch["weight"] = torch.where(batch["particle"] == 1, 3.0, 1.0)
    heavy = float(MultitaskLoss()(out, batch)["particle"])
    assert heavy > even


def test_balancers():
    losses = {t: torch.tensor(float(i + 1), requires_grad=True) for i, t in enumerate(TASKS)}
    fixed = FixedWeights(TASKS, {"impact": 0.0})
    assert float(fixed(losses).detach()) == pytest.approx(1 + 2 + 3)
    unc = UncertaintyWeighting(TASKS)
    assert float(unc(losses).detach()) == pytest.approx(10.0)  # s_i = 0
    unc(losses).backward()
    # d/ds (exp(-s) L + s) = 1 - L: tasks with larger loss get larger variance (smaller weight)
    np.testing.assert_allclose(unc.log_vars.grad.numpy(), [0.0, -1.0, -2.0, -3.0])
    with pytest.raises(ValueError):
        make_balancer("magic", TASKS)


def test_gradnorm_moves_weights_toward_balance():
    """A task whose gradient on the shared layer is much larger loses weight."""
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 4)
    x = torch.randn(16, 4)
    gradnorm = GradNorm(TASKS, alpha=0.0, lr=0.1)
    for _ in range(5):
        h = shared(x)
        losses = {t: (h * (10.0 if t == "impact" else 1.0)).pow(2).mean() for t in TASKS}
        gradnorm.update(losses, shared.weight)
    weights = gradnorm.task_weights()
    assert weights["impact"] < min(weights[t] for t in TASKS if t != "impact")
    assert sum(weights.values()) == pytest.approx(len(TASKS))


def test_metrics():
    rng = np.random.default_rng(0)
    n = 400
    particle = np.repeat([0, 1], n // 2)
    log_e = rng.uniform(-1, 1, n)
    labels = {"particle": particle, "log10_energy": log_e, "fov_offset": np.zeros((n, 2)), "impact": np.zeros((n, 2))}
    sep = np.where(particle == 0, 2.0, -2.0) + rng.normal(0, 1, n)
    outputs = {
        "class_logits": np.c_[sep, np.zeros(n)],
        "log10_energy": log_e + np.log10(1.1),  # every energy 10 % high
        "fov_offset": np.c_[np.full(n, 0.3), np.full(n, 0.4)],  # 0.5 deg off
        "impact": np.zeros((n, 2)),
    }
    summary = summary_metrics(outputs, labels)
    assert summary["energy_resolution"] == pytest.approx(0.1, rel=1e-6)
    assert summary["angular_resolution_deg"] == pytest.approx(0.5)
    assert 0.95 < summary["roc_auc"] < 1.0
    rows = binned_metrics(outputs, labels)
    assert sum(r["n_gamma"] + r["n_proton"] for r in rows) == n
    assert all(r["energy_resolution"] == pytest.approx(0.1, rel=1e-6) for r in rows if r["n_gamma"])
    labels["particle"] = np.zeros(n, int)
    assert math.isnan(summary_metrics(outputs, labels)["roc_auc"])  # one class: undefined


def test_checkpoint_atomic_and_rng(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    with pytest.raises(KeyError):
        save_checkpoint({"model_state": {}}, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    torch.manual_seed(3)
    state = {
        "model_state": {"w": torch.ones(2)},
        "model_config": {},
        "lattice": {"coords": np.zeros(3)},
        "telescope_type": "LST_LST_LSTCam",
        "training": {},
        "rng_state": rng_state(),
    }
    save_checkpoint(state, path)
    expected = torch.rand(3)
    torch.rand(10)
    set_rng_state(load_checkpoint(path)["rng_state"])
    torch.testing.assert_close(torch.rand(3), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_last.pt"]


def test_checkpoint_is_plain_and_restores_every_rng(lst1_subarray, tmp_path):
    """weights_only=True reads it; the lattice comes back as numpy arrays; python and numpy RNGs too."""
    import random

    from ctapipe_gammalearn.lattice import Lattice

    lattice = Lattice.from_geometry(lst1_subarray.tel[1].camera.geometry)
    path = tmp_path / CHECKPOINT_LAST
    state = {
        Keys.MODEL_STATE: {},
        Keys.MODEL_CONFIG: {"channels": (4, 8)},
        Keys.LATTICE: lattice.to_dict(),
        Keys.TELESCOPE_TYPE: "LST_LST_LSTCam",
        Keys.TRAINING: {"loss": np.float64(0.5)},
        Keys.RNG_STATE: rng_state(),
    }
    save_checkpoint(state, path)
    expected = random.random(), np.random.random(), np.random.normal()
    torch.load(path, weights_only=True)  # no pickled python or numpy objects
    checkpoint = load_checkpoint(path)
    assert checkpoint[Keys.TRAINING] == {"loss": 0.5} and checkpoint[Keys.MODEL_CONFIG] == {"channels": (4, 8)}
    for key, value in lattice.to_dict().items():
        if isinstance(value, np.ndarray):
            assert isinstance(checkpoint[Keys.LATTICE][key], np.ndarray)
            np.testing.assert_array_equal(checkpoint[Keys.LATTICE][key], value)
    assert Lattice.from_dict(checkpoint[Keys.LATTICE]).fingerprint == lattice.fingerprint
    set_rng_state(checkpoint[Keys.RNG_STATE])
    assert (random.random(), np.random.random(), np.random.normal()) == expected


def test_checkpoint_refuses_what_it_cannot_store_safely(tmp_path):
    path = tmp_path / CHECKPOINT_BEST
    state = {
        Keys.MODEL_STATE: {},
        Keys.MODEL_CONFIG: {},
        Keys.LATTICE: {},
        Keys.TELESCOPE_TYPE: "LST",
        Keys.TRAINING: {"when": object()},
    }
    with pytest.raises(TypeError, match=r"checkpoint\['training'\]\['when'\]: object cannot be stored"):
        save_checkpoint(state, path)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_setup(lst1_subarray):
    """A tiny γ-PhysNet on LSTCam and a synthetic in-memory "cache" (dict of arrays)."""
    from ctapipe_gammalearn.lattice import Lattice
    from ctapipe_gammalearn.nn.physnet import GammaPhysNet

    geometry = lst1_subarray.tel[1].camera.geometry
    lattice = Lattice.from_geometry(geometry)
    rng = np.random.default_rng(0)
    n = 24
    cache = {
        "image": rng.exponential(3.0, (n, geometry.n_pixels)).astype(np.float16),
        "peak_time": rng.uniform(0, 30, (n, geometry.n_pixels)).astype(np.float16),
        "log10_energy": rng.uniform(-1, 1, n).astype(np.float32),
        "fov_offset": rng.normal(0, 1, (n, 2)).astype(np.float32),
        "impact": rng.normal(0, 100, (n, 2)).astype(np.float32),
        "particle": np.tile([0, 1], n // 2).astype(np.int8),
        "weight": np.ones(n, np.float32),
    }

    def model():
        torch.manual_seed(0)
        return GammaPhysNet(lattice, preset="small", channels=(4, 8), blocks=(1, 1), head_hidden=8)

    return cache, model


def make_trainer(tiny_setup, tmp_path, balancing="fixed", lr=1e-3, **kwargs):
    from ctapipe_gammalearn.training.loop import Trainer
    from ctapipe_gammalearn.training.setup import make_optimizer
    from ctapipe_gammalearn.training.stream import BatchStream

    cache, build = tiny_setup
    model = build()
    balancer = make_balancer(balancing, TASKS)
    train = BatchStream(cache, np.arange(16), batch_size=8, seed=1)
    val = BatchStream(cache, np.arange(16, 24), batch_size=8, shuffle=False)
    return Trainer(
        model,
        MultitaskLoss("l1"),
        balancer,
        make_optimizer(model, balancer, lr, 0.0),
        train,
        val,
        checkpoint_info={"model_config": model.config, "lattice": {}, "telescope_type": "LST", "training": {}},
        checkpoint_dir=tmp_path,
        progress=False,
        **kwargs,
    )


def test_trainer_gradnorm_extra_terms_and_checkpoint(tiny_setup, tmp_path):
    calls = []

    def domain_term(model, batch, epoch, step):
        calls.append((epoch, step))
        return {"domain": 0.0 * model(batch["image"], batch["peak_time"])[0].sum()}

    trainer = make_trainer(tiny_setup, tmp_path, balancing="gradnorm", extra_terms=[domain_term])
    history = trainer.fit(1)
    assert [h["epoch"] for h in history] == [1]
    assert calls == [(1, 0), (1, 1)]
    weights = history[-1]["task_weights"]
    assert sum(weights.values()) == pytest.approx(4.0)
    assert any(abs(w - 1.0) > 1e-4 for w in weights.values())  # GradNorm moved them
    checkpoint = load_checkpoint(tmp_path / "checkpoint_last.pt")
    assert checkpoint["epoch"] == 1 and len(checkpoint["history"]) == 1
    assert (tmp_path / "checkpoint_best.pt").exists()


def test_trainer_early_stopping(tiny_setup, tmp_path, monkeypatch):
    """Stop once the validation loss has not improved for `patience` epochs; best epoch kept."""
    trainer = make_trainer(tiny_setup, tmp_path, patience=2)
    losses = iter([3.0, 2.0, 2.5, 2.1, 1.0])
    monkeypatch.setattr(trainer, "train_epoch", lambda epoch: {"train_loss": 1.0, "images_per_s": 1.0})
    monkeypatch.setattr(trainer, "validate", lambda: {"val_loss": next(losses)})
    history = trainer.fit(10)
    assert [h["val_loss"] for h in history] == [3.0, 2.0, 2.5, 2.1]
    assert trainer.stopped_early and trainer.best_epoch == 2 and trainer.best_val_loss == 2.0
    assert load_checkpoint(tmp_path / "checkpoint_best.pt")["epoch"] == 2
    assert load_checkpoint(tmp_path / "checkpoint_last.pt")["epoch"] == 4


def test_trainer_passes_the_disp_terms_and_lets_them_go(tiny_setup, tmp_path):
    trainer = make_trainer(tiny_setup, tmp_path)
    seen = []
    inner = trainer.loss_fn

    def recording_loss(outputs, batch, direction_terms=None):
        seen.append(direction_terms is not None and trainer.model.training)
        return inner(outputs, batch, direction_terms=direction_terms)

    trainer.loss_fn = recording_loss
    trainer.fit(1)
    # two training batches with the terms, then validation (eval mode) without them
    assert seen == [True, True, False]
    assert trainer.model.direction_terms is None


def test_compiled_net_sees_only_full_batches(tiny_setup, tmp_path, monkeypatch):
    """The short last batch runs eagerly: a compiled net would compile again for its shape."""
    seen = {"compiled": [], "model": []}

    class Recording(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.inner = net

        def forward(self, image, peak_time):
            seen["compiled"].append(len(image))
            return self.inner(image, peak_time)

    monkeypatch.setattr(torch, "compile", lambda net, **kwargs: Recording(net))
    trainer = make_trainer(tiny_setup, tmp_path, compile_model=True)
    from ctapipe_gammalearn.training.stream import BatchStream

    trainer.train_stream = BatchStream(tiny_setup[0], np.arange(13), batch_size=8, seed=1)  # 8 + 5
    forward = trainer.model.forward
    trainer.model.forward = lambda image, peak_time: seen["model"].append(len(image)) or forward(image, peak_time)
    trainer.train_epoch(1)
    # the model trained on both batches, the compiled wrapper saw only the full one
    assert seen == {"compiled": [8], "model": [8, 5]}


def test_amp_dtype_on_cpu_only_when_asked():
    """CPU autocast is opt-in (bf16 is faster only on CPUs with bf16 matrix units); auto stays fp32."""
    from ctapipe_gammalearn.training.setup import amp_dtype

    cpu = torch.device("cpu")
    assert amp_dtype("bf16", cpu) is torch.bfloat16
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None and amp_dtype("fp16", cpu) is None
    assert amp_dtype("off", torch.device("cuda")) is None
    assert amp_dtype("fp16", torch.device("cuda")) is torch.float16
