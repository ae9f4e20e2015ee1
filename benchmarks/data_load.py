"""Benchmark: first and second load of MNIST, and memory shared by concurrent processes.

first   a fresh process, empty cache: read the gzipped IDX files, check sizes and md5 sums,
        decode, write the Arrow cache;
second  another fresh process: memory-map the Arrow cache;
shared  N processes hold MNIST at once and touch every pixel; Linux's proportional set size (PSS)
        splits shared pages between them, so their summed PSS shows what the node really holds,
        against N private copies (N x 219 MB of float32 pixels).

The times exclude interpreter start and imports; a new process's first load also pays for
pyarrow's lazy initialisation, which the repeated load in the same process shows apart.

Usage: python benchmarks/data_load.py [--data-dir D] [--processes 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time
from gansearch.data import load_dataset
t = time.perf_counter()
d = load_dataset("mnist", sys.argv[1])
first = time.perf_counter() - t
t = time.perf_counter()
d = load_dataset("mnist", sys.argv[1])
print(json.dumps({"seconds": first, "again": time.perf_counter() - t}))
"""


def _timed_load(data_dir: str | None, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, data_dir or ""], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _memory_kb() -> dict[str, int]:
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:"):
                fields[parts[0][:-1]] = int(parts[1])
    return fields


def _holder(data_dir, barrier, results, mode: str) -> None:
    import numpy as np

    from gansearch.data import load_dataset

    total = 0.0
    if mode != "none":
        data = load_dataset("mnist", data_dir)
        arrays = [data.train, data.valid, data.test]
        if mode == "private":
            arrays = [np.array(a) for a in arrays]
        total = sum(float(a.sum()) for a in arrays)  # touch every page
    barrier.wait()  # everyone holds the data now
    results.put({**_memory_kb(), "checksum": total})
    barrier.wait()


def _summed_pss_mb(data_dir: str | None, n: int, mode: str) -> float:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_holder, args=(data_dir, barrier, results, mode)) for _ in range(n)]
    for p in procs:
        p.start()
    reports = [results.get() for _ in range(n)]
    for p in procs:
        p.join()
    return sum(r["Pss"] for r in reports) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "GANSEARCH_CACHE_DIR": cache}
        first = _timed_load(args.data_dir, env)["seconds"]
        runs = [_timed_load(args.data_dir, env) for _ in range(3)]
        second = min(r["seconds"] for r in runs)
        again = min(r["again"] for r in runs)
        print(f"first load, empty cache (decode, verify, write cache): {first:.2f} s")
        print(f"second load, new process (memory-map the cache; best of 3): {second:.3f} s")
        print(f"  the same load again in that process: {again * 1000:.1f} ms")
        os.environ["GANSEARCH_CACHE_DIR"] = cache
        n = args.processes
        base = _summed_pss_mb(args.data_dir, n, "none")
        shared = _summed_pss_mb(args.data_dir, n, "mmap") - base
        private = _summed_pss_mb(args.data_dir, n, "private") - base
        print(f"memory for MNIST in {n} processes at once (summed PSS less {n} idle processes):")
        print(f"  memory-mapped cache (gansearch): {shared:6.0f} MB")
        print(f"  private copy in each process:    {private:6.0f} MB")


if __name__ == "__main__":
    main()
