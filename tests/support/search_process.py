"""A small search running as its own process, to signal it as `timeout`, a scheduler or a
terminal would, and the processes it leaves behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "small_space.yaml"


def start_search(tmp_path: Path, new_session: bool = False) -> tuple[subprocess.Popen, Path]:
    """A search of 4 trials of 30 epochs, 2 at a time, in its own process (in a session and
    process group of its own with `new_session`), once its trials have reported 4 epochs;
    returns the driver and the results directory."""
    space = tmp_path / "small.yaml"
    space.write_text(SMALL.read_text().replace("max_epochs: 3", "max_epochs: 30"))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "gansearch.cli", "run", "--space", str(space)]
    command += ["--results-dir", str(results), "--report-top", "0", "--progress-interval", "1"]
    driver = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )
    reports = results / "small" / "reports.jsonl"
    deadline = time.monotonic() + 180
    while not reports.exists() or len(reports.read_text().splitlines()) < 4:
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "no trial reported within 3 minutes"
        time.sleep(0.2)
    return driver, results


def still_alive(processes: list[psutil.Process], timeout: float = 15.0) -> list[psutil.Process]:
    """The processes among `processes` still alive after `timeout` seconds."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
