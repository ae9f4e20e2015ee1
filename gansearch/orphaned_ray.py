"""Processes a killed search left behind: the local Ray it started, ended by the next search.

Ray's agents (DashboardAgent, RuntimeEnvAgent) outlive a driver killed with SIGKILL and ignore
SIGTERM. A driver that starts a local Ray records the processes it spawned (PID and start time,
so a reused PID is never mistaken for one of them) in a per-user directory; it removes the
record when it shuts Ray down. A later search ends the processes of records whose driver is
gone. No Ray import: this is bookkeeping of processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import psutil

from gansearch.data.locate import cache_dir
from gansearch.files import write_text

RECORDS = "local-ray"  # under the cache directory: one JSON file per driver
GRACE_SECONDS = 3.0


def _records_dir() -> Path:
    return cache_dir() / RECORDS


def _record_path(pid: int) -> Path:
    return _records_dir() / f"{pid}.json"


def record_local_ray() -> None:
    """Remember this driver and every process it has spawned so far (the local Ray)."""
    me = psutil.Process()
    children = [
        {"pid": child.pid, "started": child.create_time(), "name": _name(child)}
        for child in me.children(recursive=True)
    ]
    record = {"pid": me.pid, "started": me.create_time(), "children": children}
    _records_dir().mkdir(parents=True, exist_ok=True)
    write_text(_record_path(me.pid), json.dumps(record))


def forget_local_ray() -> None:
    """This driver shut its Ray down: nothing of it to end later."""
    _record_path(os.getpid()).unlink(missing_ok=True)


def reap_leftover_ray(say: Callable[[str], None]) -> int:
    """End the recorded processes of drivers that are gone; returns how many were ended."""
    directory = _records_dir()
    if not directory.is_dir():
        return 0
    ended = 0
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            driver, children = record["pid"], record["children"]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # unreadable: nothing to act on safely
            continue
        if _alive(driver, record.get("started")):
            continue  # a search still running (or this one)
        left = [p for c in children if (p := _alive(c["pid"], c["started"])) is not None]
        for process in left:
            _try(process.terminate)
        _, still = psutil.wait_procs(left, timeout=GRACE_SECONDS)
        for process in still:
            _try(process.kill)
        if left:
            names = sorted({_name(p) for p in left})
            say(
                f"ended {len(left)} process(es) of a local Ray that a search (PID {driver}) left "
                f"behind when it was killed: {', '.join(names)}"
            )
        ended += len(left)
        path.unlink(missing_ok=True)
    return ended


def _alive(pid: int, started: float | None) -> psutil.Process | None:
    """The process `pid` if it is still the one that started at `started`."""
    try:
        process = psutil.Process(int(pid))
        if started is not None and abs(process.create_time() - float(started)) > 1e-3:
            return None  # the PID was reused
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (psutil.Error, ValueError):
        return None


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return "?"


def _try(action: Callable[[], None]) -> None:
    try:
        action()
    except psutil.Error:
        pass
