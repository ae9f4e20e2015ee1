"""The MLflow tracking store: which one to use, the client bound to it, and the tags by which
gansearch finds its runs again.

A search is an MLflow experiment's parent run (tagged with its experiment directory and search id)
and one child run per trial (tagged with its Tune trial id), so a resumed search or a later report
adds to the same runs. The default store is `sqlite:///<results_dir>/mlflow.db` with artifacts in
`<results_dir>/mlartifacts`: no server needed. The tags of both kinds of run are built here,
by `search_run_tags` and `trial_run_tags`, for every module that creates runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gansearch.errors import GansearchError, first_line

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
TAG_ROLE = "gansearch.role"  # "search" (parent) or "trial" (child)
TAG_EXPERIMENT_DIR = "gansearch.experiment_dir"
TAG_SEARCH_ID = "gansearch.search_id"  # the experiment directory's identity, wherever it moves
TAG_TRIAL_ID = "gansearch.trial_id"
TAG_STATUS = "gansearch.status"  # running, finished, stopped early, diverged, failed, interrupted
TAG_REASON = "gansearch.reason"
TAG_LINEAGE = "gansearch.lineage"  # pbt: "epoch 12: copied trial ab12_00003; ..."
TAG_REPORT_RANK = "gansearch.report_rank"  # a reported trial's rank, from gansearch report
PARENT_TAG = "mlflow.parentRunId"
# MLflow 3's UI opens an experiment in its model-training view (not the GenAI one) with this tag.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


class TrackingError(GansearchError):
    """The MLflow tracking store cannot be reached or used (exit code 2)."""

    exit_code = 2


def default_tracking_uri(results_dir: Path) -> str:
    """The embedded store: a SQLite file inside the results directory."""
    return f"sqlite:///{Path(results_dir).resolve() / DB_FILE}"


def resolve_tracking_uri(given: str | None, results_dir: Path, stored: str | None = None) -> str:
    """Which store to use: --tracking-uri, else the one the search started with, else
    MLFLOW_TRACKING_URI, else the embedded SQLite store in `results_dir`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return given or stored or env or default_tracking_uri(results_dir)


def is_remote(uri: str) -> bool:
    """Whether `uri` names a tracking server (rather than a database the client opens)."""
    return urllib.parse.urlparse(uri).scheme in ("http", "https", "databricks")


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast (TrackingError) when a tracking server does not answer; the MLflow client itself
    would retry for minutes. Any HTTP answer, even an error status, counts as reachable."""
    if urllib.parse.urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri}: {reason}. Start it, fix "
            "--tracking-uri (or MLFLOW_TRACKING_URI), or leave both out to track into the "
            "results directory"
        ) from None


def search_run_tags(
    experiment_dir: Path,
    search_id: str | None,
    status: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The tags of a search's parent run: its role, experiment directory, search id (when
    known) and `status`, then `extra`."""
    return {
        TAG_ROLE: "search",
        TAG_EXPERIMENT_DIR: str(experiment_dir),
        **({TAG_SEARCH_ID: search_id} if search_id else {}),
        TAG_STATUS: status,
        **(extra or {}),
    }


def trial_run_tags(parent_run_id: str, trial_id: str, status: str) -> dict[str, str]:
    """The tags of a trial's run: nested under the search's parent run, with its Tune trial id
    and `status`."""
    return {
        PARENT_TAG: parent_run_id,
        TAG_ROLE: "trial",
        TAG_TRIAL_ID: trial_id,
        TAG_STATUS: status,
    }


def param_name(key: str) -> str:
    """An MLflow-safe parameter name for a search-space key: `keep_probs[0]` -> `keep_probs.0`."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    batch = [Param(param_name(str(k)), str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(batch), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run_id, params=batch[start : start + 100])


def _failure(uri: str, exc: Exception) -> TrackingError:
    return TrackingError(f"MLflow tracking store {uri}: {first_line(exc)}")


_LEFTOVER_PREFIX = "_alembic_tmp_"  # the copy of a table that Alembic's SQLite migrations build


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def _half_created(db: Path) -> TrackingError | None:
    """What to do about an MLflow SQLite store that a killed process left with a migration half
    done (a leftover `_alembic_tmp_*` table makes every later migration fail), or None when `db`
    holds no such table.

    A leftover is Alembic's copy of a table being rebuilt: safe to drop while the table itself
    still holds every row, the only copy once the table was dropped (and maybe recreated empty).
    """
    try:
        with contextlib.closing(
            sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        ) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}

            def rows(table: str) -> int:
                if table not in tables:
                    return 0
                return connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]

            leftovers = sorted(t for t in tables if t.startswith(_LEFTOVER_PREFIX))
            runs = max(rows("runs"), rows(_LEFTOVER_PREFIX + "runs"))
            only_copies = [t for t in leftovers if rows(t) > rows(t[len(_LEFTOVER_PREFIX) :])]
    except sqlite3.Error:
        return None
    if not leftovers:
        return None
    path = shlex.quote(str(db))
    what = (
        f"MLflow tracking store {db} was left half-built by a run stopped while MLflow was "
        f"creating or upgrading its tables (leftover table {', '.join(leftovers)})"
    )
    if not runs:
        return TrackingError(
            f"{what}. It holds no runs yet: remove it (rm {path}) and run again; if another "
            "gansearch command is creating this store right now, wait for it to start instead"
        )
    held = f"It holds {runs} run{'s' if runs != 1 else ''}"
    if only_copies:
        return TrackingError(
            f"{what}. {held}, and {', '.join(only_copies)} holds rows its table lacks: do not "
            f"drop it. Back the file up (cp {path} {path}.bak) before repairing it by hand, or "
            f"move it aside (mv {path} {path}.broken) to start a new store"
        )
    drops = " ".join(f"DROP TABLE {t};" for t in leftovers)
    return TrackingError(
        f"{what}. {held}, and the leftover only copies rows its table still holds: back the "
        f"file up (cp {path} {path}.bak), drop the leftover (sqlite3 {path} '{drops}') and run "
        "again"
    )


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


@dataclass
class TrackingStore:
    """An MLflow client bound to one tracking URI, and where local artifacts go."""

    uri: str
    client: Any  # mlflow.MlflowClient
    artifact_root: str | None  # None: the server decides

    @classmethod
    def open(cls, uri: str, results_dir: Path) -> TrackingStore:
        """Connect (creating a SQLite store if needed: 5 to 8 s the first time)."""
        check_reachable(uri)
        if urllib.parse.urlparse(uri).scheme == "sqlite":
            Path(results_dir).mkdir(parents=True, exist_ok=True)
        from mlflow import MlflowClient

        quiet = [logging.getLogger(n) for n in ("alembic", "mlflow.store.db.utils")]
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(logging.WARNING)  # the migration log says nothing actionable
        try:
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)  # opens (or creates) the store
        except TrackingError:
            raise
        except Exception as exc:
            leftover = _half_created(db) if (db := _sqlite_path(uri)) else None
            raise leftover or _failure(uri, exc) from None
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)
        root = None if is_remote(uri) else (Path(results_dir).resolve() / ARTIFACTS_DIR).as_uri()
        return cls(uri=uri, client=client, artifact_root=root)

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        """The id of experiment `name`, created when missing (and `create`)."""
        try:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"MLflow experiment {name!r} in {self.uri} is deleted: restore it "
                    f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) "
                    "or choose another --name"
                )
            if experiment is not None:
                if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                    self.client.set_experiment_tag(  # a search made before the tag existed
                        experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
                    )
                return experiment.experiment_id
            if not create:
                return None
            tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            if self.artifact_root is None:
                return self.client.create_experiment(name, tags=tags)
            location = f"{self.artifact_root}/{urllib.parse.quote(name)}"
            return self.client.create_experiment(name, artifact_location=location, tags=tags)
        except TrackingError:
            raise
        except Exception as exc:
            raise _failure(self.uri, exc) from None

    def search_runs(self, experiment_id: str, filter_string: str) -> list[Any]:
        """Every run matching `filter_string` (all pages), newest first."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id],
                filter_string=filter_string,
                max_results=1000,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def find_search_run(
        self, experiment_id: str, experiment_dir: Path, search_id: str | None = None
    ) -> Any | None:
        """The newest parent run of the search `search_id` (so a copied or moved experiment
        directory finds its own), else of the search in `experiment_dir`, or None."""
        if search_id:
            runs = self.search_runs(
                experiment_id,
                f"tags.`{TAG_ROLE}` = 'search' and tags.`{TAG_SEARCH_ID}` = '{_quote(search_id)}'",
            )
            if runs:
                return runs[0]
        runs = self.search_runs(
            experiment_id,
            f"tags.`{TAG_ROLE}` = 'search' and tags.`{TAG_EXPERIMENT_DIR}` = "
            f"'{_quote(str(Path(experiment_dir).resolve()))}'",
        )
        return runs[0] if runs else None

    def trial_runs(self, experiment_id: str, parent_run_id: str) -> dict[str, Any]:
        """Tune trial id -> child run of the parent run (the oldest, should there be two)."""
        runs = self.search_runs(experiment_id, f"tags.`{PARENT_TAG}` = '{parent_run_id}'")
        found: dict[str, Any] = {}
        for run in reversed(runs):  # oldest first: the first one logged wins
            trial_id = run.data.tags.get(TAG_TRIAL_ID)
            if trial_id and trial_id not in found:
                found[trial_id] = run
        return found
