"""The MLflow tracking store (gansearch.tracking.store): an unreachable server stops a search
before any trial, and importing the package leaves MLflow unloaded until a store is opened."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from gansearch.cli import main
from tests.support.processes import free_port
from tests.support.tracked_search import SMALL

pytestmark = pytest.mark.slow


def test_unreachable_tracking_server_is_reported_before_trials(tmp_path, capsys):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--tracking-uri", uri]
    assert main(args) == 2
    assert time.monotonic() - started < 15  # no Ray started, no retries for minutes
    err = capsys.readouterr().err
    assert f"cannot reach the MLflow tracking server at {uri}" in err and "Traceback" not in err
    assert not (tmp_path / "small").exists()


def test_importing_tracking_leaves_mlflow_unloaded():
    """MLflow takes seconds to import: the package loads it only when a store is opened."""
    code = "import sys, gansearch.tracking; print(sorted({'mlflow', 'ray'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
