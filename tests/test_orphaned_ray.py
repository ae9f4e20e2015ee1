"""What a killed search leaves behind: its local Ray's processes, ended by the next search, and
never a process that only reuses a recorded PID."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

from gansearch import orphaned_ray


def _spawn(ignore_term: bool = False) -> subprocess.Popen:
    code = "import signal, time\n"
    if ignore_term:  # as Ray's DashboardAgent and RuntimeEnvAgent do
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(120)\n"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.mark.slow
def test_the_next_search_ends_what_a_killed_driver_left(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    polite, stubborn = _spawn(), _spawn(ignore_term=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    records = tmp_path / "cache" / orphaned_ray.RECORDS
    records.mkdir(parents=True)
    children = [
        {"pid": p.pid, "started": psutil.Process(p.pid).create_time(), "name": "python"}
        for p in (polite, stubborn)
    ]
    (records / f"{dead.pid}.json").write_text(
        json.dumps({"pid": dead.pid, "started": 0.0, "children": children})
    )
    alive = {"pid": os.getpid(), "started": psutil.Process().create_time(), "children": children}
    (records / f"{os.getpid()}.json").write_text(json.dumps(alive))  # a live search: untouched
    said: list[str] = []
    try:
        assert orphaned_ray.reap_leftover_ray(said.append) == 2
        assert polite.wait(timeout=10) is not None and stubborn.wait(timeout=10) is not None
        assert f"(PID {dead.pid})" in said[0] and "2 process(es)" in said[0]
        assert not (records / f"{dead.pid}.json").exists()
        assert (records / f"{os.getpid()}.json").exists()
    finally:
        for child in (polite, stubborn):
            child.kill()


def test_a_reused_pid_is_not_ended(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    child = _spawn()
    records = tmp_path / "cache" / orphaned_ray.RECORDS
    records.mkdir(parents=True)
    other = {"pid": child.pid, "started": 1.0, "name": "raylet"}  # started long ago: not this one
    (records / "999999.json").write_text(
        json.dumps({"pid": 999999, "started": 0.0, "children": [other]})
    )
    try:
        assert orphaned_ray.reap_leftover_ray(lambda text: None) == 0
        assert child.poll() is None
    finally:
        child.kill()
