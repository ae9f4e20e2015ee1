"""What a killed search leaves behind: its local Ray's processes, ended by the next search, and
never a process that only reuses a recorded PID, a process that is not Ray's, or one named by a
record that someone else could have written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from gansearch import files, orphaned_ray


def _spawn(root: Path, ignore_term: bool = False) -> subprocess.Popen:
    """A process that looks like one of Ray's helpers: a script under ray/_private/."""
    script = root / "ray" / "_private" / ("stubborn_agent.py" if ignore_term else "agent.py")
    script.parent.mkdir(parents=True, exist_ok=True)
    code = "import signal, time\n"
    if ignore_term:  # as Ray's DashboardAgent and RuntimeEnvAgent do
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(120)\n"
    script.write_text(code)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def _records(tmp_path: Path, monkeypatch, mode: int = 0o700) -> Path:
    monkeypatch.setenv("GANSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    records = tmp_path / "cache" / orphaned_ray.RECORDS
    records.mkdir(parents=True)
    records.chmod(mode)
    return records


def _record(records: Path, driver: int, *processes: subprocess.Popen) -> Path:
    children = [
        {"pid": p.pid, "started": psutil.Process(p.pid).create_time(), "name": "?"}
        for p in processes
    ]
    path = records / f"{driver}.json"
    path.write_text(json.dumps({"pid": driver, "started": 0.0, "children": children}))
    path.chmod(0o600)
    return path


@pytest.mark.slow
def test_the_next_search_ends_what_a_killed_driver_left(tmp_path, monkeypatch):
    records = _records(tmp_path, monkeypatch)
    polite, stubborn = _spawn(tmp_path), _spawn(tmp_path, ignore_term=True)
    dead = _dead_pid()
    _record(records, dead, polite, stubborn)
    children = [
        {"pid": p.pid, "started": psutil.Process(p.pid).create_time(), "name": "python"}
        for p in (polite, stubborn)
    ]
    alive = {"pid": os.getpid(), "started": psutil.Process().create_time(), "children": children}
    (records / f"{os.getpid()}.json").write_text(json.dumps(alive))  # a live search: untouched
    said: list[str] = []
    try:
        assert orphaned_ray.reap_leftover_ray(said.append) == 2
        assert polite.wait(timeout=10) is not None and stubborn.wait(timeout=10) is not None
        assert f"(PID {dead})" in said[0] and "2 process(es)" in said[0]
        assert not (records / f"{dead}.json").exists()
        assert (records / f"{os.getpid()}.json").exists()
    finally:
        for child in (polite, stubborn):
            child.kill()


def test_a_reused_pid_is_not_ended(tmp_path, monkeypatch):
    records = _records(tmp_path, monkeypatch)
    child = _spawn(tmp_path)
    other = {"pid": child.pid, "started": 1.0, "name": "raylet"}  # started long ago: not this one
    (records / "999999.json").write_text(
        json.dumps({"pid": 999999, "started": 0.0, "children": [other]})
    )
    try:
        assert orphaned_ray.reap_leftover_ray(lambda text: None) == 0
        assert child.poll() is None
    finally:
        child.kill()


def test_a_recorded_process_that_is_not_rays_is_left_alone(tmp_path, monkeypatch):
    records = _records(tmp_path, monkeypatch)
    sleeper = subprocess.Popen(["sleep", "60"])
    path = _record(records, _dead_pid(), sleeper)
    said: list[str] = []
    try:
        assert orphaned_ray.reap_leftover_ray(said.append) == 0
        assert sleeper.poll() is None
        assert said == [
            f"left PID {sleeper.pid} (sleep) alone: named in {path}, but not a Ray process of yours"
        ]
    finally:
        sleeper.kill()


@pytest.mark.parametrize("mode", [0o770, 0o707])
def test_records_in_a_directory_others_can_write_are_ignored(tmp_path, monkeypatch, mode):
    records = _records(tmp_path, monkeypatch, mode)
    agent = _spawn(tmp_path)
    path = _record(records, _dead_pid(), agent)
    said: list[str] = []
    try:
        assert orphaned_ray.reap_leftover_ray(said.append) == 0
        assert agent.poll() is None and path.exists()
        who = "its group" if mode == 0o770 else "other users"
        assert len(said) == 1
        assert f"ignored the records of leftover Ray processes in {records}: it can be " in said[0]
        assert f"written by {who}, and only records nobody else" in said[0]
    finally:
        agent.kill()


def test_records_in_a_directory_of_another_user_are_ignored(tmp_path, monkeypatch):
    records = _records(tmp_path, monkeypatch)
    agent = _spawn(tmp_path)
    _record(records, _dead_pid(), agent)
    monkeypatch.setattr(files, "current_uid", lambda: os.getuid() + 4242)
    said: list[str] = []
    try:
        assert orphaned_ray.reap_leftover_ray(said.append) == 0
        assert agent.poll() is None
        owner = files.user_name(os.getuid())
        assert len(said) == 1 and f"in {records}: it belongs to user {owner}, not to you" in said[0]
    finally:
        agent.kill()


@pytest.mark.parametrize("kind", ["group-writable", "link"])
def test_a_record_file_others_could_have_written_is_ignored(tmp_path, monkeypatch, kind):
    records = _records(tmp_path, monkeypatch)
    agent = _spawn(tmp_path)
    dead = _dead_pid()
    path = _record(records, dead, agent)
    if kind == "group-writable":
        path.chmod(0o620)
        why = "can be written by its group"
    else:
        elsewhere = tmp_path / "elsewhere.json"
        path.rename(elsewhere)
        path.symlink_to(elsewhere)
        why = "is a symbolic link"
    said: list[str] = []
    try:
        assert orphaned_ray.reap_leftover_ray(said.append) == 0
        assert agent.poll() is None and path.is_symlink() == (kind == "link")
        assert said == [
            f"ignored {path}: it {why}, and only records nobody else could have written are "
            "acted on"
        ]
    finally:
        agent.kill()


def test_only_ray_processes_of_this_user_count_as_rays(tmp_path):
    agent = _spawn(tmp_path)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        me = os.getuid()
        assert orphaned_ray.is_ray_process(psutil.Process(agent.pid), me)
        assert not orphaned_ray.is_ray_process(psutil.Process(agent.pid), me + 4242)
        assert not orphaned_ray.is_ray_process(psutil.Process(sleeper.pid), me)
    finally:
        agent.kill()
        sleeper.kill()


def test_the_keeper_of_a_local_ray_counts_as_rays(tmp_path):
    keeper = tmp_path / "gansearch" / "search" / "local_ray.py"
    keeper.parent.mkdir(parents=True)
    keeper.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    run = "import runpy, sys; runpy.run_path(sys.argv[1])"  # as LocalRay starts the keeper
    process = subprocess.Popen(
        [sys.executable, "-c", run, str(keeper)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline() == "ready\n"  # running the script, not forking still
        assert orphaned_ray.is_ray_process(psutil.Process(process.pid), os.getuid())
    finally:
        process.kill()
        process.wait()


def test_the_records_directory_is_made_for_this_user_only(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    orphaned_ray.record_local_ray()
    records = tmp_path / "cache" / orphaned_ray.RECORDS
    try:
        assert records.stat().st_mode & 0o777 == 0o700
        record = json.loads((records / f"{os.getpid()}.json").read_text())
        assert record["pid"] == os.getpid()
    finally:
        orphaned_ray.forget_local_ray()
    assert not (records / f"{os.getpid()}.json").exists()
