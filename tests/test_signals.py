"""Stopping a search: SIGTERM does what Ctrl-C does, a second Ctrl-C still writes the results
and a third abandons them, Ray's own messages stay out of the terminal, the printed resume
command works when pasted, and no process of the search outlives it."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from gansearch.signals import ABANDON_AFTER, stop_signals
from gansearch.tracking import default_tracking_uri
from tests.support.search_process import start_search, still_alive


def _tune_takes_the_next_press() -> list[int]:
    """Install a handler in front of the driver's as Ray Tune's Tuner.fit does: it takes one
    SIGINT (Tune stops the trials) and puts back the handler it found. Returns its presses."""
    found = signal.getsignal(signal.SIGINT)
    taken: list[int] = []

    def handler(signum: int, frame: object) -> None:
        taken.append(signum)
        signal.signal(signal.SIGINT, found)

    signal.signal(signal.SIGINT, handler)
    return taken


def _press(signum: int = signal.SIGINT) -> None:
    """Send `signum` to this process and let its Python handler run."""
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs in the main thread, between two bytecodes


def test_ctrl_c_before_the_trials_start_aborts_at_once():
    with pytest.raises(KeyboardInterrupt), stop_signals(print) as state:
        _press()
    assert state.exit_code == 130 and state.presses == 0


def test_the_second_ctrl_c_only_says_so_and_the_third_abandons_the_results():
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt), stop_signals(said.append) as state:
        state.stopping = True
        taken = _tune_takes_the_next_press()
        _press()  # Tune stops the trials
        assert taken == [signal.SIGINT] and said == []
        _press()
        assert said == [
            "already stopping: the trials' state and the results are being written "
            "(press Ctrl-C 1 more time to abandon them)"
        ]
        _press()  # abandons: KeyboardInterrupt out of the results being written
    assert ABANDON_AFTER == 3 and state.presses == 3 and state.exit_code == 130
    assert len(said) == 1


def test_sigterm_counts_as_the_first_press():
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt), stop_signals(said.append) as state:
        state.stopping = True
        taken = _tune_takes_the_next_press()
        _press(signal.SIGTERM)  # handed to Tune's handler, as a SIGINT
        assert taken == [signal.SIGINT] and said == []
        _press()
        assert "press Ctrl-C 1 more time" in said[0]
        _press()
    assert state.exit_code == 143  # the first signal names the exit status


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_the_printed_command_resumes(tmp_path):
    driver, results = start_search(tmp_path)
    spawned = psutil.Process(driver.pid).children(recursive=True)
    assert spawned, "the search started no process (no local Ray?)"
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 143, err
    assert "Traceback" not in err and "Stop signal received" not in err
    assert "Tuner.restore" not in err  # Ray's advice went to the log file, not the terminal
    assert "Stop signal received" in (results / "small" / "driver.log").read_text()
    assert not still_alive(spawned), "processes of the search outlived it"

    table = pd.read_parquet(results / "small" / "results.parquet")
    assert len(table) >= 2
    from mlflow import MlflowClient

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
        # The search, not the Table 1 evaluation after it (minutes on a busy machine).
        [sys.executable, "-m", "gansearch.cli", *words[1:], "--progress-interval", "100"]
        + ["--report-top", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path / "results",  # pasted anywhere: the command names every path
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    table = pd.read_parquet(results / "small" / "results.parquet")
    assert len(table) == 4 and table["status"].isin(["finished", "stopped early"]).all()


@pytest.mark.slow
def test_a_second_ctrl_c_still_writes_the_results(tmp_path):
    driver, results = start_search(tmp_path)
    driver.send_signal(signal.SIGINT)
    time.sleep(0.3)
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 130, err
    assert (results / "small" / "results.parquet").exists()
    assert "Traceback" not in err
    assert "continue it with: " in err and "already stopping" in err
