"""The MLflow tracking store (gansearch.tracking.store): an unreachable server stops a search
before any trial, a store left half-built by a killed run says what to do, and importing the
package leaves MLflow unloaded until a store is opened."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time

import pytest

from gansearch.cli import main
from gansearch.experiment import META_FILE, RESULTS_FILE
from gansearch.tracking import DB_FILE, TrackingError, TrackingStore, default_tracking_uri
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


def _store_with(db, tables: dict[str, int]) -> None:
    """A SQLite file holding `tables`, each with that many rows."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        for table, rows in tables.items():
            connection.execute(f"CREATE TABLE {table} (id INTEGER)")
            connection.executemany(f"INSERT INTO {table} VALUES (?)", [(i,) for i in range(rows)])
        connection.commit()


def test_a_store_half_created_by_a_killed_run_says_how_to_start_over(tmp_path, capsys):
    """A run killed while MLflow created its tables leaves `_alembic_tmp_experiments` behind,
    and every later migration fails on it ("table ... already exists")."""
    db = tmp_path / DB_FILE
    _store_with(db, {"_alembic_tmp_experiments": 0})
    search = tmp_path / "search"  # a search whose store was never created
    search.mkdir()
    (search / RESULTS_FILE).touch()
    (search / META_FILE).write_text('{"budget": {}, "tracking_uri": null}')
    args = ["sample", "--results-dir", str(tmp_path), "--out", str(tmp_path / "s.npy")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "already exists" not in err
    assert (
        f"gansearch sample: error: MLflow tracking store {db} was left half-built by a run "
        "stopped while MLflow was creating or upgrading its tables (leftover table "
        f"_alembic_tmp_experiments). It holds no runs yet: remove it (rm {db}) and run again; "
    ) in err


def test_a_half_migrated_store_that_holds_runs_keeps_them(tmp_path):
    db = tmp_path / DB_FILE
    _store_with(db, {"runs": 2, "experiments": 1, "_alembic_tmp_experiments": 1})
    with pytest.raises(TrackingError, match="It holds 2 runs") as caught:
        TrackingStore.open(default_tracking_uri(tmp_path), tmp_path)
    drop = f"sqlite3 {db} 'DROP TABLE _alembic_tmp_experiments;'"
    assert f"back the file up (cp {db} {db}.bak), drop the leftover ({drop})" in str(caught.value)

    only_copy = tmp_path / "only-copy"
    only_copy.mkdir()
    _store_with(only_copy / DB_FILE, {"runs": 1, "_alembic_tmp_experiments": 1})
    with pytest.raises(
        TrackingError,
        match="It holds 1 run, and _alembic_tmp_experiments holds "
        "rows its table lacks: do not drop it",
    ):
        TrackingStore.open(default_tracking_uri(only_copy), only_copy)
