"""Early training dynamics of the paper's MNIST GAN: where does it collapse, and under which rule?

Trains with gansearch.trainer.Trainer (its own step functions, so exactly what `gansearch train`
does) for a few hundred steps and prints, every `--every` steps:
    D(x), D(G(z))   mean D outputs in the training steps of that interval (with dropout)
    Dnd(x) Dnd(Gz)  the same without dropout, on 500 validation images / 500 fresh samples
    |gG| |gD|       mean L2 norm of G's / D's full gradient over the interval's steps
    sat             fraction of sample pixels outside [0.01, 0.99] (saturated sigmoid outputs)
    spread          mean over pixels of the std across 500 samples (0 = every sample the same)
    LL              Parzen validation log-likelihood of `--parzen` samples, sigma chosen on the
                    first 1,000 validation images (the paper's grid)

    GANSEARCH_DATA_DIR=/path/to/mnist python benchmarks/mnist_dynamics.py \\
        --update alternating --steps 500 --every 50
    python benchmarks/mnist_dynamics.py --update simultaneous --set optim.lr_g=0.05

`--update g_first` is a diagnostic hybrid, not a trainer option: Algorithm 1's separate passes
(fresh noise and dropout masks for each net) but G's step comes before D's, so G is scored by the
pre-update D as in the simultaneous rule (k = 1 only).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import yaml

from gansearch.data import load_dataset
from gansearch.data.base import Dataset
from gansearch.parzen import ParzenConfig, evaluate
from gansearch.train_config import apply_overrides, load_config
from gansearch.trainer import Trainer


def _grad_norm(grads: tuple[torch.Tensor, ...]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))


class Probe:
    """Wraps Trainer._sgd to record the norm of every gradient it applies, per net."""

    def __init__(self, trainer: Trainer) -> None:
        self.g: list[float] = []
        self.d: list[float] = []
        original = trainer._sgd
        g_params = trainer.g_params

        def spy(params, velocity, grads, lr, momentum):  # noqa: ANN001, ANN202
            (self.g if params is g_params else self.d).append(_grad_norm(grads))
            original(params, velocity, grads, lr, momentum)

        trainer._sgd = spy  # type: ignore[method-assign]

    def take(self) -> tuple[float, float]:
        g, d = np.mean(self.g) if self.g else float("nan"), np.mean(self.d)
        self.g.clear()
        self.d.clear()
        return float(g), float(d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mnist_paper.yaml")
    parser.add_argument(
        "--update", choices=("alternating", "simultaneous", "g_first"), default=None
    )
    parser.add_argument("--steps", type=int, default=500, help="minibatches (default: 1 epoch)")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--parzen", type=int, default=2000, help="samples for the Parzen LL")
    parser.add_argument("--n-train", type=int, default=None, help="use the first n train images")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    overrides = {"eval.every": 0}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    g_first = args.update == "g_first"
    if args.update and not g_first:
        overrides["optim.update"] = args.update
    if args.seed is not None:
        overrides["seed"] = args.seed
    config = apply_overrides(load_config(args.config), overrides, source="command line")
    full = load_dataset(config.data.name, fold=config.data.fold, download=False)
    train = full.train[: args.n_train] if args.n_train else full.train
    data = Dataset(full.name, train, full.valid, full.test, full.image_shape)
    trainer = Trainer(config, data)
    probe = Probe(trainer)
    o = config.optim
    m = o.batch_size
    valid = torch.from_numpy(np.array(full.valid[:500]))
    eval_rng = torch.Generator().manual_seed(12345)
    parzen = ParzenConfig(n_valid=1000)
    rule = "g_first" if g_first else o.update
    print(f"update={rule} k={o.k} lr_d={o.lr_d} lr_g={o.lr_g} n_train={len(train)}", flush=True)
    print(
        f"{'step':>5} {'D(x)':>6} {'D(Gz)':>6} {'Dnd(x)':>7} {'Dnd(Gz)':>7} {'|gG|':>8} "
        f"{'|gD|':>8} {'sat':>5} {'spread':>6} {'LL':>8} {'s/step':>7}",
        flush=True,
    )
    perm = torch.randperm(len(train), generator=trainer.rngs["data"])
    pos, sums, n_in = 0, torch.zeros(2), 0
    t0 = time.perf_counter()
    momentum = trainer.momentum(1)
    for step in range(1, args.steps + 1):
        if pos + m > len(train):
            perm = torch.randperm(len(train), generator=trainer.rngs["data"])
            pos = 0
        x = trainer.train_x[perm[pos : pos + m]]
        pos += m
        if o.update == "simultaneous":
            stats = trainer._simultaneous_step(x, momentum)
            sums += stats[1:3]
        elif g_first:
            trainer._g_step(m, momentum)
            _, dx, dg = trainer._d_step(x, momentum)
            sums += torch.stack([dx, dg])
        else:
            _, dx, dg = trainer._d_step(x, momentum)
            sums += torch.stack([dx, dg])
            if trainer.d_updates % o.k == 0:
                trainer._g_step(m, momentum)
        n_in += 1
        if step % args.every == 0 or step == args.steps:
            elapsed = (time.perf_counter() - t0) / n_in
            g_norm, d_norm = probe.take()
            samples = trainer.sample(max(args.parzen, 500), rng=eval_rng)
            with torch.no_grad():
                dnd_x = torch.sigmoid(trainer.discriminator(valid)).mean().item()
                dnd_g = torch.sigmoid(trainer.discriminator(samples[:500])).mean().item()
            sat = ((samples < 0.01) | (samples > 0.99)).float().mean().item()
            spread = samples[:500].std(0).mean().item()
            ll = evaluate(samples[: args.parzen], full.valid, None, config=parzen).valid_mean
            dx, dg = (sums / n_in).tolist()
            print(
                f"{step:5d} {dx:6.3f} {dg:6.3f} {dnd_x:7.3f} {dnd_g:7.3f} {g_norm:8.3f} "
                f"{d_norm:8.3f} {sat:5.3f} {spread:6.3f} {ll:8.1f} {elapsed:7.4f}",
                flush=True,
            )
            sums, n_in = torch.zeros(2), 0
            t0 = time.perf_counter()


if __name__ == "__main__":
    main()
