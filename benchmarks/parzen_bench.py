"""Benchmark: the full MNIST Parzen protocol against a matrix-product floor and the naive code.

In one run, on the same machine state:
  floor     one 10,000 x 784 x 10,000 float32 matrix product (the distances' unavoidable cost);
  protocol  gansearch's evaluate(): 10,000 samples, sigma chosen from logspace(-1, 0, 10) on the
            first 1,000 validation images, then the 10,000 test images;
  naive     the released Theano script's algorithm in NumPy float32: differences broadcast in
            batches of 10 examples, recomputed for every sigma.
Goals: protocol <= 2.5 x floor, and >= 50 x faster than naive.

The naive protocol takes about 10 minutes here; --naive-fraction F times it on a fraction F of
its examples and scales up (its cost is exactly linear in the number of examples scored).

Usage: python benchmarks/parzen_bench.py [--data-dir D] [--repeats 3] [--naive-fraction 1.0]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.special import logsumexp

from gansearch.data import load_dataset
from gansearch.parzen import DEFAULT_SIGMAS, ParzenConfig, evaluate


def naive_log_likelihoods(x: np.ndarray, mu: np.ndarray, sigma: float, batch: int = 10):
    """The original algorithm: per batch of 10 examples, broadcast differences to every centre."""
    out = np.empty(len(x), dtype=np.float64)
    const = math.log(len(mu)) + x.shape[1] * math.log(sigma * math.sqrt(2 * math.pi))
    for i in range(0, len(x), batch):
        a = (x[i : i + batch, None, :] - mu[None, :, :]) / np.float32(sigma)
        out[i : i + batch] = logsumexp(-0.5 * (a**2).sum(axis=2), axis=1) - const
    return out


def naive_protocol(samples, valid, test, fraction: float) -> tuple[float, float]:
    """Time the naive protocol on `fraction` of its examples; return (seconds scaled up, sigma)."""
    n_valid, n_test = max(10, round(1000 * fraction)), max(10, round(len(test) * fraction))
    start = time.perf_counter()
    scores = [naive_log_likelihoods(valid[:n_valid], samples, s).mean() for s in DEFAULT_SIGMAS]
    sigma = DEFAULT_SIGMAS[int(np.argmax(scores))]
    naive_log_likelihoods(test[:n_test], samples, sigma)
    elapsed = time.perf_counter() - start
    work_done = len(DEFAULT_SIGMAS) * n_valid + n_test
    work_full = len(DEFAULT_SIGMAS) * 1000 + len(test)
    return elapsed * work_full / work_done, sigma


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-fraction", type=float, default=1.0)
    parser.add_argument("--precision", choices=("float32", "float64"), default="float32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    data = load_dataset("mnist", args.data_dir)
    samples = np.array(data.train[:10_000])  # real images stand in for a generator's samples
    valid, test = np.array(data.valid), np.array(data.test)
    config = ParzenConfig(precision=args.precision, device=args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")

    a = torch.rand(10_000, 784, device=args.device)
    b = torch.rand(784, 10_000, device=args.device)
    floors, protocols = [], []
    for repeat in range(args.repeats):  # interleaved so both see the same machine state
        start = time.perf_counter()
        (a @ b).sum().item()
        floors.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = evaluate(samples, valid, test, config)
        protocols.append(time.perf_counter() - start)
        print(f"  repeat {repeat + 1}: floor {floors[-1]:.2f} s, protocol {protocols[-1]:.2f} s")
    floor, protocol = min(floors), min(protocols)
    print(
        f"protocol result: sigma {result.sigma:.4f}, valid {result.valid_mean:.2f} ± "
        f"{result.valid_se:.2f}, test {result.test_mean:.2f} ± {result.test_se:.2f}"
    )
    print(f"floor (one 10k x 784 x 10k matmul, best of {args.repeats}): {floor:.2f} s")
    print(f"protocol (best of {args.repeats}): {protocol:.2f} s = {protocol / floor:.2f} x floor")

    print(f"naive protocol on {args.naive_fraction:.0%} of its examples ...", flush=True)
    naive, naive_sigma = naive_protocol(samples, valid, test, args.naive_fraction)
    scaled = " (scaled up)" if args.naive_fraction < 1 else ""
    print(
        f"naive: {naive:.1f} s{scaled}, sigma {naive_sigma:.4f}; speed-up {naive / protocol:.0f} x"
    )
    ok = protocol <= 2.5 * floor and naive / protocol >= 50
    print(f"goals (<= 2.5 x floor, >= 50 x naive): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
