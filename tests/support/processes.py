"""Processes and ports of the services a test starts (Ray, PostgreSQL, MLflow)."""

from __future__ import annotations

import os
import socket
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
