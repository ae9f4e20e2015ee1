"""The device check: does gansearch work on this GPU, and how fast? One command, one report.

    python benchmarks/device_check.py OUT_DIR                # on the GPU: about 5 minutes
    python benchmarks/device_check.py OUT_DIR --device cpu   # a dry run in about a minute

It writes OUT_DIR/device_check.json and OUT_DIR/device_check.md with:

1. the machine: torch, the device, its memory;
2. the CUDA-marked tests (`pytest -m cuda`), passed / failed / skipped;
3. the trainer's samples/s on the paper's MNIST model against a hand-written PyTorch loop of
   the same model on the same device, interleaved (the ratio is what matters);
4. the Parzen protocol (10,000 samples scored on 10,000 test images, sigma from a 10-value grid)
   against one 10,000 x 784 x 10,000 matrix product on the same device (the ratio);
5. a real `gansearch run` on MNIST with 1, 2, 4 and 8 trials packed on the GPU
   (`resources.gpus` 1, 0.5, 0.25, 0.125) for a fixed short budget: aggregate trial-epochs per
   second, peak GPU memory per trial, and whether every trial finished.

MNIST is read from GANSEARCH_DATA_DIR (or the default data directory); nothing is downloaded.
On `--device cpu` the sizes shrink, the search runs on scikit-learn's digits with 1 and 2 trials
at a time and no GPU share: the point is that the check runs end to end, so it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from trainer_speed import HandLoop  # noqa: E402

from gansearch.data import load_dataset  # noqa: E402
from gansearch.data.base import Dataset  # noqa: E402
from gansearch.parzen import DEFAULT_SIGMAS, ParzenConfig, evaluate  # noqa: E402
from gansearch.train_config import TrainConfig, apply_overrides  # noqa: E402
from gansearch.trainer import Trainer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _say(text: str) -> None:
    print(f"[device check {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def machine(device: torch.device) -> dict[str, Any]:
    """What the check ran on."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "cpus": os.cpu_count(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1))
        info["cuda"] = torch.version.cuda
    return info


def cuda_tests(timeout: float) -> dict[str, Any]:
    """`pytest -m cuda`: the tests that exercise the CUDA path (skipped without a GPU)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped)", summary)}
    return {
        "exit_code": done.returncode,
        "summary": summary,
        "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "seconds": round(time.perf_counter() - started, 1),
    }


def trainer_speed(device: torch.device, steps: int, repeats: int) -> dict[str, Any]:
    """Trainer against the hand-written loop, the paper's MNIST model, batch 100."""
    config = apply_overrides(TrainConfig(), {"eval.every": 0, "device": str(device)})
    m = config.optim.batch_size
    n = steps * m
    pixels = (np.random.default_rng(0).random((n, 784)) < 0.13).astype(np.float32)
    trainer = Trainer(config, Dataset("random", pixels, pixels[:10], pixels[:10], (28, 28)))
    hand = HandLoop(trainer.train_x, config)
    trainer.run_epoch()  # warm-up: allocator, kernels
    hand.epoch(steps)
    ours, theirs = [], []
    for _ in range(repeats):  # interleaved, so that drifting load hits both alike
        _sync(device)
        t0 = time.perf_counter()
        trainer.run_epoch()
        _sync(device)
        t1 = time.perf_counter()
        hand.epoch(steps)
        _sync(device)
        t2 = time.perf_counter()
        ours.append(n / (t1 - t0))
        theirs.append(n / (t2 - t1))
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    # The same trainer with `compile: true` (torch.compile of G and D): worth turning on?
    compiled = Trainer(apply_overrides(config, {"compile": True}), trainer.dataset)
    t0 = time.perf_counter()
    compiled.run_epoch()  # compiles
    _sync(device)
    compile_seconds = time.perf_counter() - t0
    fast = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        compiled.run_epoch()
        _sync(device)
        fast.append(n / (time.perf_counter() - t0))
    return {
        "steps": steps,
        "repeats": repeats,
        "trainer_samples_per_s": round(statistics.median(ours)),
        "hand_loop_samples_per_s": round(statistics.median(theirs)),
        "ratio": round(statistics.median(ratios), 3),
        "compiled_samples_per_s": round(statistics.median(fast)),
        "compiled_ratio": round(statistics.median(fast) / statistics.median(ours), 3),
        "compile_seconds": round(compile_seconds, 1),
    }


def parzen_speed(device: torch.device, n: int) -> dict[str, Any]:
    """The Parzen protocol against one n x 784 x n matrix product on the same device."""
    rng = np.random.default_rng(0)
    samples = rng.random((n, 784), dtype=np.float32)
    valid = rng.random((min(n, 1000), 784), dtype=np.float32)
    test = rng.random((n, 784), dtype=np.float32)
    config = ParzenConfig(sigmas=DEFAULT_SIGMAS, n_valid=None, device=str(device))
    a = torch.from_numpy(samples).to(device)
    b = torch.from_numpy(test).to(device)
    (a @ b.T).sum().item()  # warm-up
    evaluate(samples[:100], valid[:100], test[:100], config)
    _sync(device)
    t0 = time.perf_counter()
    (a @ b.T).sum().item()
    _sync(device)
    matmul = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = evaluate(samples, valid, test, config)
    _sync(device)
    protocol = time.perf_counter() - t0
    return {
        "n": n,
        "sigmas": len(DEFAULT_SIGMAS),
        "protocol_seconds": round(protocol, 3),
        "matmul_seconds": round(matmul, 4),
        "ratio": round(protocol / matmul, 1),
        "test_mean": round(float(result.test_mean), 2),
    }


SPACE = """\
name: {name}
dataset: {{name: {dataset}}}
trainer: {{device: {device}{small}}}
params:
  optim.lr_d: {{distribution: loguniform, low: 0.05, high: 0.2}}
search: {{algorithm: random, seed: 0}}
scheduler: {{type: none}}
budget: {{trials: {trials}, max_epochs: {epochs}, concurrency: {trials}}}
resources: {{cpus: {cpus}, gpus: {gpus}, max_failures: 0}}
objective: {{metric: valid_ll, eval_every: 1, samples: {samples}, n_valid: 1000}}
"""


def packed_search(
    device: torch.device, packings: list[int], epochs: int, root: Path, timeout: float
) -> list[dict[str, Any]]:
    """`gansearch run` with 1, 2, ... trials sharing one GPU: throughput and memory."""
    rows = []
    gpu = device.type == "cuda"
    for trials in packings:
        name = f"packed-{trials}"
        space = root / f"{name}.yaml"
        space.write_text(
            SPACE.format(
                name=name,
                dataset="mnist" if gpu else "digits",
                device="cuda" if gpu else "cpu",
                small=""
                if gpu
                else ", generator: {units: [64, 64]}, discriminator: {units: [32, 32], pieces: 2}",
                trials=trials,
                epochs=epochs,
                cpus=max(1, min(2, (os.cpu_count() or 1) // trials)),
                gpus=round(1.0 / trials, 4) if gpu else 0,
                samples=2000 if gpu else 500,
            )
        )
        command = [sys.executable, "-m", "gansearch.cli", "run", "--space", str(space)]
        command += ["--results-dir", str(root / "runs"), "--report-top", "0"]
        _say(f"gansearch run with {trials} trial(s) {'per GPU' if gpu else 'at a time'}")
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - started
        row: dict[str, Any] = {"trials": trials, "gpus_per_trial": 1.0 / trials if gpu else 0}
        row.update(exit_code=done.returncode, wall_seconds=round(wall, 1))
        results = root / "runs" / name / "results.parquet"
        if done.returncode != 0 or not results.exists():
            row["error"] = done.stderr.strip().splitlines()[-1:] or ["no output"]
            rows.append(row)
            continue
        import pandas as pd

        table = pd.read_parquet(results)
        memory = _peak_memory(root / "runs" / name / "reports.jsonl")
        span = float(table["wall_seconds"].max())  # the slowest trial, start to end
        row.update(
            finished=int((table["status"] == "finished").sum()),
            trial_epochs=int(table["epochs"].sum()),
            # Over the slowest trial's life (training, evaluation, checkpoints): the packing's
            # throughput; wall_seconds adds Ray's start-up, which does not depend on the packing.
            trial_epochs_per_s=round(float(table["epochs"].sum()) / span, 3) if span else None,
            gpu_memory_mb_per_trial=memory,
        )
        rows.append(row)
    return rows


def _peak_memory(reports: Path) -> float | None:
    peaks = [
        float(r["gpu_memory_mb"])
        for r in map(json.loads, reports.read_text().splitlines())
        if r.get("gpu_memory_mb") is not None
    ]
    return round(max(peaks), 1) if peaks else None


def markdown(summary: dict[str, Any]) -> str:
    """The report for people."""
    m, t, p = summary["machine"], summary["trainer"], summary["parzen"]
    c = summary["cuda_tests"]
    lines = [
        f"# Device check: {m.get('gpu', m['device'])}",
        "",
        f"torch {m['torch']}, device {m['device']}, {m['cpus']} CPUs"
        + (f", {m['gpu_memory_gib']} GiB, CUDA {m['cuda']}" if "gpu" in m else "")
        + f"; {summary['seconds']:.0f} s in all.",
        "",
        f"- CUDA-marked tests: {c['summary']}",
        f"- Trainer: {t['trainer_samples_per_s']:,} samples/s, hand-written loop "
        f"{t['hand_loop_samples_per_s']:,} samples/s: ratio {t['ratio']} (median of "
        f"{t['repeats']} interleaved pairs of {t['steps']} steps)",
        f"- Trainer with `compile: true`: {t['compiled_samples_per_s']:,} samples/s, "
        f"{t['compiled_ratio']}x the plain trainer (compiling took {t['compile_seconds']} s)",
        f"- Parzen protocol ({p['n']:,} x {p['n']:,}, {p['sigmas']} sigmas): "
        f"{p['protocol_seconds']} s, one {p['n']:,} x 784 x {p['n']:,} product "
        f"{p['matmul_seconds']} s: ratio {p['ratio']}",
        "",
        "| trials together | GPU share each | finished | trial-epochs | trial-epochs/s | "
        "peak GPU MB per trial | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["search"]:
        if "error" in row:
            lines.append(f"| {row['trials']} | | failed: {' '.join(row['error'])} | | | | |")
            continue
        lines.append(
            f"| {row['trials']} | {row['gpus_per_trial']:g} | {row['finished']}/{row['trials']} "
            f"| {row['trial_epochs']} | {row['trial_epochs_per_s']} | "
            f"{row['gpu_memory_mb_per_trial'] or '-'} | {row['wall_seconds']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for device_check.json and .md")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("device check: no CUDA device here; --device cpu is the dry run", file=sys.stderr)
        return 2
    gpu = device.type == "cuda"
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_dataset("mnist" if gpu else "digits")  # fails now, not in the search, if data is missing
    summary: dict[str, Any] = {"machine": machine(device)}
    _say("CUDA-marked tests")
    summary["cuda_tests"] = cuda_tests(timeout=120)
    _say("trainer against the hand-written loop")
    summary["trainer"] = trainer_speed(device, steps=500 if gpu else 20, repeats=5 if gpu else 2)
    _say("Parzen protocol against one matrix product")
    summary["parzen"] = parzen_speed(device, n=10_000 if gpu else 1_000)
    with tempfile.TemporaryDirectory(prefix="device-check-") as root:
        summary["search"] = packed_search(
            device,
            [1, 2, 4, 8] if gpu else [1, 2],
            epochs=2 if gpu else 1,
            root=Path(root),
            timeout=150,
        )
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "device_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "device_check.md").write_text(markdown(summary))
    print(markdown(summary))
    failed = summary["cuda_tests"]["failed"] or any(
        "error" in r or r["finished"] < r["trials"] for r in summary["search"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
