"""Training-step images/s per variant (fp32, bf16 autocast, torch.compile), as a fraction of the FLOP bound.

    python benchmarks/bench_training_step.py [--presets small paper] [--batch 64] [--repeats 5]
        [--variants eager bf16 compile compile-bf16] [--threads N]

One training step is the real one: γ-PhysNet forward, the multitask loss with uncertainty
weighting, backward and AdamW, on synthetic LSTCam images (a Poisson sky plus a bright
ellipse). The variants' steps are timed round-robin, so that each median is taken under
the same machine load; the FLOP bound is forward FLOPs x 3 against the float32 and bfloat16
matmul peaks measured in the same run.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from _common import lstcam_lattice, matmul_peak_gflops

from ctapipe_gammalearn.nn.flops import count_flops
from ctapipe_gammalearn.nn.physnet import GammaPhysNet
from ctapipe_gammalearn.training.balancing import make_balancer
from ctapipe_gammalearn.training.losses import TASKS, MultitaskLoss
from ctapipe_gammalearn.training.setup import make_optimizer

VARIANTS = ("eager", "bf16", "compile", "compile-bf16")


def synthetic_batch(lattice, batch, seed=0):
    """Images with a sky of ~2 p.e. and one bright elongated blob per image, and labels."""
    rng = np.random.default_rng(seed)
    xy = np.asarray(lattice.fov_positions, dtype=np.float32)
    image = rng.poisson(2.0, (batch, lattice.n_pixels)).astype(np.float32) - 2.0
    centre = rng.uniform(-1, 1, (batch, 1, 2)).astype(np.float32)
    distance = np.linalg.norm(xy[None] - centre, axis=2)
    image += 300.0 * np.exp(-0.5 * (distance / 0.15) ** 2)
    peak_time = (10.0 + 2.0 * (xy[None, :, 0] - centre[:, :, 0]) + rng.normal(0, 1, image.shape)).astype(np.float32)
    return {
        "image": torch.as_tensor(image),
        "peak_time": torch.as_tensor(peak_time),
        "particle": torch.as_tensor(rng.integers(0, 2, batch)),
        "log10_energy": torch.as_tensor(rng.uniform(-1.5, 1.5, batch).astype(np.float32)),
        "fov_offset": torch.as_tensor(centre[:, 0] * 1.2),
        "impact": torch.as_tensor(rng.uniform(-200, 200, (batch, 2)).astype(np.float32)),
        "weight": torch.ones(batch),
    }


class Step:
    """One variant's model, loss, balancer and optimiser, stepped on a fixed batch."""

    def __init__(self, lattice, preset, variant, batch):
        torch.manual_seed(0)
        self.model = GammaPhysNet(lattice, preset=preset).train()
        self.net = torch.compile(self.model) if variant.startswith("compile") else self.model
        self.bf16 = variant.endswith("bf16")
        self.loss_fn, self.balancer = MultitaskLoss(), make_balancer("uncertainty", TASKS)
        self.optimizer = make_optimizer(self.model, self.balancer, 1e-3, 1e-4)
        self.batch = batch

    def __call__(self):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            outputs = self.net(self.batch["image"], self.batch["peak_time"])
        outputs = tuple(o.float() for o in outputs)
        terms = {k: v.float() for k, v in self.model.direction_terms.items()}
        losses = self.loss_fn(outputs, self.batch, terms)
        self.optimizer.zero_grad()
        self.balancer(losses).backward()
        self.optimizer.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant (round-robin)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (compilation happens here)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lattice = lstcam_lattice()
    batch = synthetic_batch(lattice, args.batch)
    peaks = {dtype: matmul_peak_gflops(dtype) for dtype in (torch.float32, torch.bfloat16)}
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}; matmul peak "
        f"fp32 {peaks[torch.float32]:.0f} GFLOP/s, bf16 {peaks[torch.bfloat16]:.0f} GFLOP/s"
    )
    print(f"{'preset':>7} {'variant':>13} {'img/s':>8} {'vs eager':>9} {'of fp32 peak':>13} {'of bf16 peak':>13}")
    for preset in args.presets:
        steps = {v: Step(lattice, preset, v, batch) for v in args.variants}
        flops = count_flops(steps[args.variants[0]].model)["flops"]
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        times = {v: [] for v in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        rates = {v: args.batch / statistics.median(t) for v, t in times.items()}
        for name, rate in rates.items():
            achieved = rate * 3 * flops / 1e9
            relative = rate / rates["eager"] if "eager" in rates else float("nan")
            print(
                f"{preset:>7} {name:>13} {rate:8.1f} {relative:9.2f} {achieved / peaks[torch.float32]:13.1%} "
                f"{achieved / peaks[torch.bfloat16]:13.1%}"
            )


if __name__ == "__main__":
    main()
