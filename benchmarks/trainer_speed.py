"""Training throughput of gansearch.trainer.Trainer against a minimal hand-written PyTorch loop.

Both train the paper's MNIST architecture (G 100-1200-1200-784, D maxout 240x5, 240x5, dropout
0.8/0.5/0.5) with Algorithm 1 (k = 1) and pylearn2's momentum SGD on a batch of 100. Repeats are
interleaved (trainer, loop, trainer, loop, ...) so that drifting machine load hits both alike; the
reported ratio is the median of the per-pair ratios of training samples per second.

    python benchmarks/trainer_speed.py                  # MNIST-shaped random data, CPU
    python benchmarks/trainer_speed.py --device cuda --steps 500 --repeats 7
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from gansearch.data.base import Dataset
from gansearch.train_config import TrainConfig, apply_overrides
from gansearch.trainer import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class HandLoop:
    """The same model and update rule written out directly: no metrics, no checks, global RNG."""

    def __init__(self, train: torch.Tensor, config: TrainConfig) -> None:
        g, d, o = config.generator, config.discriminator, config.optim
        dev = train.device
        self.train, self.o, self.g, self.d = train, o, g, d

        def layer(n_in: int, n_out: int, r: float) -> list[torch.Tensor]:
            w = torch.empty(n_out, n_in, device=dev).uniform_(-r, r).requires_grad_()
            return [w, torch.zeros(n_out, device=dev, requires_grad=True)]

        gd = [g.noise_dim, *g.units, train.shape[1]]
        self.gp = [
            t for a, b in zip(gd[:-1], gd[1:], strict=True) for t in layer(a, b, g.init_range)
        ]
        dd = [train.shape[1], *d.units]
        self.dp = [
            t
            for a, b in zip(dd[:-1], dd[1:], strict=True)
            for t in layer(a, b * d.pieces, d.init_range)
        ]
        self.dp += layer(dd[-1], 1, d.init_range)
        self.gv = [torch.zeros_like(p) for p in self.gp]
        self.dv = [torch.zeros_like(p) for p in self.dp]
        self.nd = self.ng = 0

    def gen(self, z: torch.Tensor) -> torch.Tensor:
        p = self.gp
        for i in range(0, len(p) - 2, 2):
            z = F.relu(F.linear(z, p[i], p[i + 1]))
        return torch.sigmoid(F.linear(z, p[-2], p[-1]))

    def dis(self, x: torch.Tensor) -> torch.Tensor:
        p, keep = self.dp, self.d.keep_probs
        for j, i in enumerate(range(0, len(p) - 2, 2)):
            x = F.dropout(x, 1 - keep[j])
            x = F.linear(x, p[i], p[i + 1]).unflatten(-1, (self.d.units[j], self.d.pieces)).amax(-1)
        return F.linear(F.dropout(x, 1 - keep[-1]), p[-2], p[-1]).squeeze(-1)

    def step(self, params, vel, grads, lr, mom) -> None:
        with torch.no_grad():
            torch._foreach_mul_(vel, mom)
            torch._foreach_add_(vel, grads, alpha=-lr)
            torch._foreach_add_(params, vel)

    def noise(self, m: int, device: torch.device) -> torch.Tensor:
        """The trainer's default noise: N(0, 1), as the released MNIST run drew it."""
        return torch.randn(m, self.g.noise_dim, device=device)

    def epoch_simultaneous(self, steps: int, mom: float = 0.5) -> None:
        """The released code's rule: one forward pass, D and G updated from it."""
        m, o = self.o.batch_size, self.o
        perm = torch.randperm(self.train.shape[0], device=self.train.device)
        y = torch.cat([torch.ones(m), torch.zeros(m)]).to(self.train.device)
        for s in range(steps):
            x = self.train[perm[s * m : (s + 1) * m]]
            z = self.noise(m, x.device)
            logits = self.dis(torch.cat([x, self.gen(z)]))
            d_loss = F.binary_cross_entropy_with_logits(logits, y)
            g_loss = F.softplus(-logits[m:]).mean()
            d_grads = torch.autograd.grad(d_loss, self.dp, retain_graph=True)
            g_grads = torch.autograd.grad(g_loss, self.gp)
            self.step(self.dp, self.dv, d_grads, max(o.lr_d / o.lr_decay**self.nd, o.lr_min), mom)
            self.step(self.gp, self.gv, g_grads, max(o.lr_g / o.lr_decay**self.ng, o.lr_min), mom)
            self.nd += 1
            self.ng += 1

    def epoch(self, steps: int, mom: float = 0.5) -> None:
        if self.o.update == "simultaneous":
            self.epoch_simultaneous(steps, mom)
            return
        m, o = self.o.batch_size, self.o
        perm = torch.randperm(self.train.shape[0], device=self.train.device)
        y = torch.cat([torch.ones(m), torch.zeros(m)]).to(self.train.device)
        for s in range(steps):
            x = self.train[perm[s * m : (s + 1) * m]]
            with torch.no_grad():
                fake = self.gen(self.noise(m, x.device))
            loss = F.binary_cross_entropy_with_logits(self.dis(torch.cat([x, fake])), y)
            grads = torch.autograd.grad(loss, self.dp)
            self.step(self.dp, self.dv, grads, max(o.lr_d / o.lr_decay**self.nd, o.lr_min), mom)
            self.nd += 1
            z = self.noise(m, x.device)
            loss = F.softplus(-self.dis(self.gen(z))).mean()
            grads = torch.autograd.grad(loss, self.gp)
            self.step(self.gp, self.gv, grads, max(o.lr_g / o.lr_decay**self.ng, o.lr_min), mom)
            self.ng += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="iterations (D+G) per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--update", choices=("simultaneous", "alternating"), default="simultaneous")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    overrides = {"eval.every": 0, "device": args.device, "optim.update": args.update}
    config = apply_overrides(TrainConfig(), overrides)
    m = config.optim.batch_size
    n = args.steps * m  # one trainer epoch == `steps` iterations
    rng = np.random.default_rng(0)
    pixels = (rng.random((n, 784)) < 0.13).astype(np.float32)  # MNIST-like sparsity
    data = Dataset("random", pixels, pixels[:10], pixels[:10], (28, 28))
    trainer = Trainer(config, data)
    hand = HandLoop(trainer.train_x, config)
    device = trainer.device

    trainer.run_epoch()  # warm-up both (allocator, kernels)
    hand.epoch(args.steps)
    ratios, ours, theirs = [], [], []
    for _ in range(args.repeats):
        _sync(device)
        t0 = time.perf_counter()
        trainer.run_epoch()
        _sync(device)
        t1 = time.perf_counter()
        hand.epoch(args.steps)
        _sync(device)
        t2 = time.perf_counter()
        ours.append(n / (t1 - t0))
        theirs.append(n / (t2 - t1))
        ratios.append(ours[-1] / theirs[-1])
        print(
            f"trainer {ours[-1]:9.0f} samples/s   hand loop {theirs[-1]:9.0f} samples/s", flush=True
        )
    ratio = statistics.median(ratios)
    spread = (max(ratios) - min(ratios)) / 2 if len(ratios) > 1 else math.nan
    print(
        f"update {args.update}, device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, "
        f"{args.steps} iterations x {args.repeats} repeats (batch {m})\n"
        f"trainer median {statistics.median(ours):.0f} samples/s, hand loop median "
        f"{statistics.median(theirs):.0f} samples/s, ratio (median of pairs) {ratio:.3f} "
        f"(half-range {spread:.3f})"
    )


if __name__ == "__main__":
    main()
