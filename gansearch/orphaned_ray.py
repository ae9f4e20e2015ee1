"""Processes a killed search left behind: the local Ray it started, ended by the next search.

Ray's agents (DashboardAgent, RuntimeEnvAgent) outlive a driver killed with SIGKILL and ignore
SIGTERM. A driver that starts a local Ray records the processes it spawned (PID and start time,
so a reused PID is never mistaken for one of them) in a per-user directory; it removes the
record when it shuts Ray down. A later search ends the processes of records whose driver is
gone. Records are trusted only in a directory of the user's that nobody else can write, and
only processes that are Ray's and the user's are ended: a record someone else wrote, or one
that names another program, ends nothing. No Ray import: this is bookkeeping of processes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from gansearch.data.locate import cache_dir
from gansearch.files import NO_FOLLOW, current_uid, foreign_writer, write_text

RECORDS = "local-ray"  # under the cache directory: one JSON file per driver
GRACE_SECONDS = 3.0
RAY_NAMES = frozenset({"raylet", "gcs_server"})  # Ray's own executables
# Ray's workers and agents retitle themselves "ray::<what>" (ray::IDLE, ray::DashboardAgent);
# its other helpers run scripts or modules of Ray's package (log_monitor.py, the dashboard).
RAY_SCRIPT = re.compile(r"(?:^|/)ray/(?:_private|dashboard|autoscaler|core)/")
RAY_MODULE = re.compile(r"^ray\.(?:_private|dashboard|autoscaler)\.")
# The keeper that holds a search's local Ray in a session of its own (gansearch.search.local_ray).
KEEPER_SCRIPT = re.compile(r"(?:^|/)gansearch/search/local_ray\.py$")


def _records_dir() -> Path:
    return cache_dir() / RECORDS


def _record_path(pid: int) -> Path:
    return _records_dir() / f"{pid}.json"


def record_local_ray() -> None:
    """Remember this driver and every process it has spawned so far (the local Ray); nothing
    is recorded where the records would not be trusted (reap_leftover_ray says why)."""
    me = psutil.Process()
    children = [
        {"pid": child.pid, "started": child.create_time(), "name": _name(child)}
        for child in me.children(recursive=True)
    ]
    record = {"pid": me.pid, "started": me.create_time(), "children": children}
    directory = _records_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _untrusted_directory(directory) is None:
        write_text(_record_path(me.pid), json.dumps(record))


def forget_local_ray() -> None:
    """This driver shut its Ray down: nothing of it to end later."""
    _record_path(os.getpid()).unlink(missing_ok=True)


def reap_leftover_ray(say: Callable[[str], None]) -> int:
    """End the recorded processes of drivers that are gone; returns how many were ended.

    Records in a directory, or files, that someone else could have written are ignored with a
    note, and so are recorded processes that are not Ray's or not this user's."""
    directory = _records_dir()
    if not directory.exists() and not directory.is_symlink():
        return 0
    why = _untrusted_directory(directory)
    if why is not None:
        say(
            f"ignored the records of leftover Ray processes in {directory}: it {why}, and only "
            "records nobody else could have written are acted on (remove it: the next search "
            "makes one that only you can write)"
        )
        return 0
    uid = current_uid()
    ended = 0
    for path in sorted(directory.glob("*.json")):
        record, why = _read_record(path)
        if why is not None:
            say(f"ignored {path}: it {why}, and only records nobody else could have written are "
                "acted on")  # fmt: skip
            continue
        if record is None:
            path.unlink(missing_ok=True)  # unreadable: nothing to act on safely
            continue
        driver, driver_started, children = record
        if _alive(driver, driver_started):
            continue  # a search still running (or this one)
        found = [p for pid, started in children if (p := _alive(pid, started)) is not None]
        left = [p for p in found if is_ray_process(p, uid)]
        spared = [p for p in found if p not in left]
        if spared:
            shown = ", ".join(f"PID {p.pid} ({_name(p)})" for p in spared)
            say(f"left {shown} alone: named in {path}, but not a Ray process of yours")
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


def is_ray_process(process: psutil.Process, uid: int) -> bool:
    """Whether `process` runs as user `uid` and is one of Ray's: raylet, gcs_server, a
    `ray::` worker or agent, a script or module of Ray's package, or gansearch's keeper of a
    local Ray."""
    try:
        uids = process.uids()
        if uids.real != uid or uids.effective != uid:
            return False
        name, cmdline = process.name(), process.cmdline()
    except psutil.Error:
        return False
    if name in RAY_NAMES or name.startswith("ray::"):
        return True
    if cmdline and cmdline[0].startswith("ray::"):
        return True
    return any(
        RAY_SCRIPT.search(arg) or RAY_MODULE.match(arg) or KEEPER_SCRIPT.search(arg)
        for arg in cmdline
    )


def _untrusted_directory(directory: Path) -> str | None:
    """Why the records directory could hold records someone else wrote (None: it cannot)."""
    try:
        info = os.lstat(directory)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    return foreign_writer(info)


Record = tuple[int, float | None, list[tuple[int, float]]]


def _read_record(path: Path) -> tuple[Record | None, str | None]:
    """A record as (driver PID, its start time, its children's PIDs and start times), or None
    when it cannot be read; with why it is not trusted (a link, not the user's, or writable by
    others), the record is not read at all."""
    try:
        fd = os.open(path, os.O_RDONLY | NO_FOLLOW)
    except OSError as exc:
        return None, "is a symbolic link" if exc.errno == errno.ELOOP else None
    with open(fd, "rb") as f:
        info = os.fstat(fd)
        why = "is not a regular file" if not stat.S_ISREG(info.st_mode) else foreign_writer(info)
        if why is not None:
            return None, why
        try:
            raw: Any = json.loads(f.read())
            children = [(int(c["pid"]), float(c["started"])) for c in raw["children"]]
            return (int(raw["pid"]), _time(raw.get("started")), children), None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None, None


def _time(value: Any) -> float | None:
    return None if value is None else float(value)


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
