"""Benchmark scale-out on a simulated Ray cluster: throughput and per-trial overhead vs. nodes.

For each node count N (default 1, 2, 3) this starts `ray.cluster_utils.Cluster` (a head with no
CPUs and N worker nodes of one CPU each, all on this machine), runs `gansearch run --address` on
it as a subprocess (N trials at a time, short trials on the bundled digits, no early stopping,
no report) and prints, from the search's results.parquet:

- trials per minute while the search ran (first trial start to last trial end, as the driver
  saw them) and over the whole command (Ray connection, MLflow store and driver start included);
- per-trial overhead: a trial's wall time as the driver sees it minus the time in the training
  loop (actor start, data load, model build, reports and checkpoints, scheduling);
- the training loop seconds per trial, to show what oversubscribing the cores does.

The figures are what docs/scaling.md uses. On a 2-core machine 3 one-CPU nodes oversubscribe the
cores: the third node adds scheduling capacity, not compute.

Usage: python benchmarks/scaling_bench.py [--nodes 1 2 3] [--trials 12] [--epochs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "tests" / "fixtures" / "small_space.yaml"


def _space(directory: Path, trials: int, epochs: int, concurrency: int) -> Path:
    """The small test space, without early stopping, with the given budget."""
    text = SMALL.read_text().replace(
        "scheduler: {type: asha, grace_period: 1, reduction_factor: 2}", "scheduler: {type: none}"
    )
    text = text.replace(
        "budget: {trials: 4, max_epochs: 3, concurrency: 2}",
        f"budget: {{trials: {trials}, max_epochs: {epochs}, concurrency: {concurrency}}}",
    )
    path = directory / "space.yaml"
    path.write_text(text)
    return path


def _kill_marked(marker: str) -> None:
    """Stop every process whose environment holds `marker` (the Ray this run started)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker.encode() in (proc / "environ").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)


def run_once(nodes: int, trials: int, epochs: int) -> dict[str, float]:
    """One search on a head and `nodes` one-CPU workers; returns its figures."""
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="gs-b-", dir="/tmp"))  # short: Ray's socket paths
    os.environ.update(RAY_TMPDIR=str(work), RAY_AUTH_MODE="disabled")
    cluster = None
    try:
        started = time.monotonic()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        for _ in range(nodes):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        cluster_seconds = time.monotonic() - started
        space = _space(work, trials, epochs, nodes)
        command = [sys.executable, "-m", "gansearch.cli", "run", "--space", str(space)]
        command += ["--address", cluster.address, "--results-dir", str(work / "runs")]
        command += ["--report-top", "0", "--progress-interval", "1000"]
        begun = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        command_seconds = time.monotonic() - begun
        if done.returncode != 0:
            raise SystemExit(f"the search failed:\n{done.stderr[-3000:]}")
        table = pd.read_parquet(work / "runs" / "small" / "results.parquet")
        used = {n for nodes_ in table["nodes"] for n in nodes_.split(",") if n}
        # The search's span: the first trial's start to the last trial's end (driver clock).
        span = _span(done.stderr, table)
        return {
            "nodes": nodes,
            "nodes_used": len(used),
            "trials": len(table),
            "cluster_start_s": cluster_seconds,
            "command_s": command_seconds,
            "span_s": span,
            "trials_per_min": 60 * len(table) / span,
            "trials_per_min_command": 60 * len(table) / command_seconds,
            "overhead_s": float(table["overhead_seconds"].mean()),
            "overhead_median_s": float(table["overhead_seconds"].median()),
            "loop_s": float(table["loop_seconds"].mean()),
        }
    finally:
        if cluster is not None:
            cluster.shutdown()
        _kill_marked(f"RAY_TMPDIR={work}")
        shutil.rmtree(work, ignore_errors=True)


def _span(stderr: str, table: pd.DataFrame) -> float:
    """Seconds from the first trial's start to the last trial's end (driver clock): each trial's
    end from its progress line (`[  12.3 s] trial ID finished ...`), its start = end - wall."""
    walls = dict(zip(table["trial_id"], table["wall_seconds"], strict=True))
    starts, ends = [], []
    for line in stderr.splitlines():
        match = re.match(r"\[\s*([\d.]+) s\] trial (\w+) (finished|stopped early)", line)
        if match and match.group(2) in walls:
            ends.append(float(match.group(1)))
            starts.append(ends[-1] - float(walls[match.group(2)]))
    return max(ends) - min(starts) if ends else float("nan")


def main() -> None:
    """Run the benchmark for each node count and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for nodes in args.nodes:
        row = run_once(nodes, args.trials, args.epochs)
        rows.append(row)
        print(
            f"{nodes} node(s): {row['trials']} trials on {row['nodes_used']} node(s); "
            f"{row['trials_per_min']:.1f} trials/min while running, "
            f"{row['trials_per_min_command']:.1f} over the command ({row['command_s']:.1f} s); "
            f"overhead/trial {row['overhead_s']:.2f} s (median {row['overhead_median_s']:.2f}), "
            f"loop {row['loop_s']:.2f} s; cluster up in {row['cluster_start_s']:.1f} s",
            flush=True,
        )
    print(pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
