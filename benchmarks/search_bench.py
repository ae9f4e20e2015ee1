"""Benchmark the search driver: overhead, start-up, early stopping, and shared data memory.

In one run, on the same space and seeds:
  1. TPE + ASHA (the space as written): time from the command to the first trial running, and
     per-trial overhead (trial wall time as the driver sees it, minus the time inside the
     training loop) once the search is running;
  2. random search without early stopping, same budget and sampler seed: the epochs each search
     spent before some trial first reached a target validation log-likelihood (by default the
     90th percentile of every value either search reported), and in total;
  3. with --memory: the summed proportional set size (PSS) of the trial worker processes while
     N trials train on MNIST at once, against one trial: the Arrow cache is shared, so N trials
     cost far less than N copies of the data set.

Usage: python benchmarks/search_bench.py [--space search_spaces/digits.yaml] [--trials 12]
       [--max-epochs 30] [--target LL] [--memory --data-dir D]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

T0 = time.monotonic()

import pandas as pd  # noqa: E402

from gansearch.objectives import PARZEN_METRIC as METRIC  # noqa: E402
from gansearch.search import RunOptions, run_search  # noqa: E402
from gansearch.space import Scheduler, SearchAlgorithm, load_space  # noqa: E402

IMPORT_SECONDS = time.monotonic() - T0


def _history(experiment_dir: Path) -> pd.DataFrame:
    """Every evaluation report of every trial, in the order they happened."""
    frames = []
    for result in experiment_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        frames.append(pd.DataFrame(rows))
    history = pd.concat(frames, ignore_index=True)
    history = history[history.get("diverged", 0) == 0]
    return history.sort_values("timestamp", kind="stable", ignore_index=True)


def _epochs_to(history: pd.DataFrame, target: float) -> int | None:
    """Epochs trained by all trials together until some trial first reports >= target."""
    hit = history.index[history[METRIC] >= target]
    return None if len(hit) == 0 else int(hit[0]) + 1  # one report per epoch (eval_every 1)


def _pss_sampler(stop: threading.Event, peaks: list[dict[str, float]]) -> None:
    """Poll the summed PSS (MB) of Ray's trial workers until `stop`; keep the peak.

    PSS splits every shared page between the processes mapping it, so summed over the workers it
    is what the node really holds; Pss_File is the file-backed part (the Arrow cache, libraries),
    Pss_Anon the private heap (models, optimiser state, minibatches).
    """
    peak: dict[str, float] = {"Pss": 0.0, "Pss_File": 0.0, "Pss_Anon": 0.0}
    while not stop.is_set():
        total = dict.fromkeys(peak, 0.0)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                if b"ImplicitFunc" not in cmdline and b"train_trial" not in cmdline:
                    continue
                for line in (proc / "smaps_rollup").read_text().splitlines():
                    key = line.split(":")[0]
                    if key in total:
                        total[key] += int(line.split()[1]) / 1024
            except OSError:
                continue
        if total["Pss"] > peak["Pss"]:
            peak = total
        stop.wait(0.5)
    peaks.append(peak)


def _memory(data_dir: str | None, workdir: Path) -> None:
    space_text = """
name: memory
dataset: {name: mnist}
trainer:
  generator: {noise_dim: 16, units: [32]}
  discriminator: {units: [16], pieces: 2, keep_probs: [0.8, 0.5]}
params:
  optim.lr_d: {distribution: loguniform, low: 0.01, high: 0.1}
search: {algorithm: random, seed: 0}
scheduler: {type: none}
budget: {trials: 2, max_epochs: 2, concurrency: 2}
objective: {eval_every: 2, samples: 200, n_valid: 100}
"""
    path = workdir / "memory.yaml"
    path.write_text(space_text)
    peaks: dict[int, dict[str, float]] = {}
    for concurrency in (1, 2):
        space = load_space(path).with_budget(trials=concurrency, concurrency=concurrency)
        stop, found = threading.Event(), []
        sampler = threading.Thread(target=_pss_sampler, args=(stop, found))
        sampler.start()
        run_search(
            space,
            RunOptions(
                name=f"memory-{concurrency}",
                results_dir=str(workdir),
                data_dir=data_dir,
                progress_interval=1e9,
            ),
        )
        stop.set()
        sampler.join()
        peaks[concurrency] = found[0]
    print("summed PSS of the trial workers at their peak, training on MNIST (219 MB of pixels):")
    for n, peak in peaks.items():
        print(
            f"  {n} trial{'s' if n > 1 else ''} at once: {peak['Pss']:.0f} MB "
            f"(file-backed, shared: {peak['Pss_File']:.0f} MB; private: {peak['Pss_Anon']:.0f} MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="search_spaces/digits.yaml")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--target", type=float, help="validation LL to reach (default: auto)")
    parser.add_argument("--memory", action="store_true", help="also measure shared data memory")
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    base = load_space(args.space).with_budget(trials=args.trials, max_epochs=args.max_epochs)
    assert base.objective.eval_every == 1, "the comparison counts one report per epoch"
    variants = {
        "tpe+asha": base,
        "random, no stopping": dataclasses.replace(
            base,
            search=SearchAlgorithm(algorithm="random", seed=base.search.seed),
            scheduler=Scheduler(type="none"),
        ),
    }
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = {}
        for label, space in variants.items():
            start = time.monotonic()
            options = RunOptions(
                name=label.split(",")[0].replace("+", "-"),
                results_dir=workdir,
                data_dir=args.data_dir,
                progress_interval=1e9,
            )
            outcome = run_search(space, options)
            outcomes[label] = (outcome, _history(outcome.experiment_dir))
            print(f"{label}: {time.monotonic() - start:.1f} s for {len(outcome.table)} trials")

        outcome, _ = outcomes["tpe+asha"]
        table = outcome.table.dropna(subset=["overhead_seconds"])
        concurrency = base.budget.concurrency
        later = table.sort_values("wall_seconds").iloc[concurrency:]  # actors exist by then
        print(f"imports before the search: {IMPORT_SECONDS:.1f} s")
        print(
            f"command to first trial running: {IMPORT_SECONDS + outcome.first_trial_seconds:.1f}"
            f" s (of which Ray start-up and scheduling {outcome.first_trial_seconds:.1f} s)"
        )
        overheads = later["overhead_seconds"].tolist()
        print(
            f"per-trial overhead (wall - training loop), trials after the first {concurrency}: "
            f"median {statistics.median(overheads):.2f} s, max {max(overheads):.2f} s "
            f"over {len(overheads)} trials (goal <= 1 s)"
        )
        bests = {label: h[METRIC].max() for label, (_, h) in outcomes.items()}
        every = pd.concat([h[METRIC] for _, h in outcomes.values()])
        target = args.target if args.target is not None else float(every.quantile(0.9))
        print(f"target validation log-likelihood: {target:.3f}")
        for label, (_, history) in outcomes.items():
            print(
                f"  {label:20s} best {bests[label]:8.3f}; epochs to target "
                f"{_epochs_to(history, target)}; epochs in total {len(history)}"
            )
        if args.memory:
            _memory(args.data_dir, Path(workdir))


if __name__ == "__main__":
    main()
