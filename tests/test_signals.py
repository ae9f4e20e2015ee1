"""Stopping a search: SIGTERM does what Ctrl-C does, a second Ctrl-C still writes the results,
Ray's own messages stay out of the terminal, the printed resume command works when pasted, and
no process of the search outlives it."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from mlflow import MlflowClient

from gansearch.tracking import default_tracking_uri

pytestmark = pytest.mark.slow
SMALL = Path(__file__).parent / "fixtures" / "small_space.yaml"


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A search of 4 trials of 30 epochs, 2 at a time, running in its own process."""
    space = tmp_path / "small.yaml"
    space.write_text(SMALL.read_text().replace("max_epochs: 3", "max_epochs: 30"))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "gansearch.cli", "run", "--space", str(space)]
    command += ["--results-dir", str(results), "--report-top", "0", "--progress-interval", "1"]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reports = results / "small" / "reports.jsonl"
    deadline = time.monotonic() + 180
    while not reports.exists() or len(reports.read_text().splitlines()) < 4:
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "no trial reported within 3 minutes"
        time.sleep(0.2)
    return driver, results


def _gone(processes: list[psutil.Process], timeout: float = 15.0) -> list[psutil.Process]:
    """The processes among `processes` still alive after `timeout` seconds."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_sigterm_stops_like_ctrl_c_and_the_printed_command_resumes(tmp_path):
    driver, results = _start(tmp_path)
    spawned = psutil.Process(driver.pid).children(recursive=True)
    assert spawned, "the search started no process (no local Ray?)"
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 143, err
    assert "Traceback" not in err and "Stop signal received" not in err
    assert "Tuner.restore" not in err  # Ray's advice went to the log file, not the terminal
    assert "Stop signal received" in (results / "small" / "driver.log").read_text()
    assert not _gone(spawned), "processes of the search outlived it"

    table = pd.read_parquet(results / "small" / "results.parquet")
    assert len(table) >= 2
    client = MlflowClient(default_tracking_uri(results))
    experiment = client.get_experiment_by_name("small").experiment_id
    runs = client.search_runs([experiment])
    parent = [r for r in runs if r.data.tags.get("gansearch.role") == "search"]
    assert len(parent) == 1 and parent[0].info.status == "KILLED"
    assert all(r.info.status != "RUNNING" for r in runs)

    line = next(x for x in err.splitlines() if "continue it with: " in x)
    words = shlex.split(line.split("continue it with: ", 1)[1])
    assert words[:2] == ["gansearch", "run"] and "--results-dir" in words
    resumed = subprocess.run(
        [sys.executable, "-m", "gansearch.cli", *words[1:], "--progress-interval", "100"],
        capture_output=True,
        text=True,
        cwd=tmp_path / "results",  # pasted anywhere: the command names every path
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    table = pd.read_parquet(results / "small" / "results.parquet")
    assert len(table) == 4 and table["status"].isin(["finished", "stopped early"]).all()


def test_a_second_ctrl_c_still_writes_the_results(tmp_path):
    driver, results = _start(tmp_path)
    driver.send_signal(signal.SIGINT)
    time.sleep(0.3)
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 130, err
    assert (results / "small" / "results.parquet").exists()
    assert "Traceback" not in err
    assert "continue it with: " in err and "already stopping" in err
