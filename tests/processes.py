"""Finding the processes a test started (Ray, PostgreSQL, MLflow) so it can end them by PID."""

from __future__ import annotations

import os
from pathlib import Path


def processes_with_env(marker: str) -> list[int]:
    """PIDs of processes whose environment holds `marker` (e.g. the RAY_TMPDIR a test set)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids
