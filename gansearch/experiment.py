"""The experiment directory: one owner for its layout, for what is stored there and for finding it.

    <results dir>/<name>/
        search_space.yaml   the space file the search started with (a resume runs this copy)
        gansearch.json      the budget in force and the MLflow tracking URI (null: the default)
        reports.jsonl       every trial report, in the order the driver received them
        trials.jsonl        how each trial ended: status, reason, wall time
        results.parquet     one row per trial, written when the search ends or is interrupted
        report/             gansearch report's Table 1 and figures
        train_trial_*/      Ray Tune's trial directories, with the checkpoints

gansearch.search writes the setup and the reports; gansearch.report and the commands read them
through the functions here, never by file name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from gansearch.errors import UsageError
from gansearch.files import append_jsonl, read_jsonl, write_text

if TYPE_CHECKING:
    from gansearch.space import SearchSpace

SPACE_COPY = "search_space.yaml"
META_FILE = "gansearch.json"
REPORTS_FILE = "reports.jsonl"
TRIALS_FILE = "trials.jsonl"
RESULTS_FILE = "results.parquet"


def save_setup(experiment_dir: Path, space: SearchSpace, tracking_uri: str | None) -> None:
    """Store what a search starts with: its space file and its budget and tracking URI."""
    experiment_dir.mkdir(parents=True, exist_ok=True)
    write_text(experiment_dir / SPACE_COPY, Path(space.source).read_text())
    meta = {"budget": dataclasses.asdict(space.budget), "tracking_uri": tracking_uri}
    write_text(experiment_dir / META_FILE, json.dumps(meta, indent=2))


def is_experiment(directory: Path) -> bool:
    """Whether `directory` holds a search's stored space."""
    return (directory / SPACE_COPY).is_file()


def stored_space(experiment_dir: Path) -> SearchSpace:
    """The space a search ran: the stored copy with the budget it ran with."""
    from gansearch.space import load_space

    space = load_space(experiment_dir / SPACE_COPY)
    meta = experiment_dir / META_FILE
    if meta.exists():
        space = space.with_budget(**json.loads(meta.read_text())["budget"])
    return space


def stored_tracking_uri(experiment_dir: Path) -> str | None:
    """The tracking URI a search was started with (None: the default store)."""
    meta = experiment_dir / META_FILE
    return json.loads(meta.read_text()).get("tracking_uri") if meta.exists() else None


def experiments(results_dir: Path) -> list[str]:
    """The names of the finished (or interrupted) searches in `results_dir`."""
    if not results_dir.is_dir():
        return []
    return sorted(p.parent.name for p in results_dir.glob(f"*/{RESULTS_FILE}"))


def find_experiment(results_dir: Path, name: str | None) -> Path:
    """The experiment directory of search `name` in `results_dir` (the only one if no name)."""
    results_dir = Path(results_dir).expanduser()
    if name is not None:
        path = results_dir / name
        if not has_results(path):
            known = experiments(results_dir)
            hint = f"; searches there: {', '.join(known)}" if known else ""
            raise UsageError(
                f"--experiment {name}: no finished search at {path} (no {RESULTS_FILE}){hint}"
            )
        return path.resolve()
    known = experiments(results_dir)
    if len(known) == 1:
        return (results_dir / known[0]).resolve()
    if not known:
        raise UsageError(f"no search results in {results_dir}: run `gansearch run` first")
    raise UsageError(f"{results_dir} holds several searches; choose one with --experiment: {known}")


def append_report(experiment_dir: Path, trial_id: str, result: Mapping[str, Any]) -> None:
    """Append one trial report to the experiment's report log (the driver is its one writer).

    Ray's own per-trial result files can lose rows when a trial is paused and restarted (pbt);
    this log keeps every report: the budget, the lineage and the budget curve are read from it.
    """
    record = {k: v for k, v in result.items() if k != "config"}
    record["trial_id"] = trial_id
    append_jsonl(experiment_dir / REPORTS_FILE, record)


def read_reports(experiment_dir: Path) -> dict[str, pd.DataFrame]:
    """The report log, one DataFrame per trial (nested values as `hp/<key>` columns)."""
    records = read_jsonl(experiment_dir / REPORTS_FILE)
    if not records:
        return {}
    table = pd.json_normalize(records, sep="/")
    return {str(k): group.reset_index(drop=True) for k, group in table.groupby("trial_id")}


def append_trial_end(
    experiment_dir: Path, trial_id: str, status: str, reason: str, wall_seconds: float | None
) -> None:
    """Add to the trial log how a trial ended (the status is computed once, when it ends)."""
    record = {"trial_id": trial_id, "status": status, "reason": reason, "wall": wall_seconds}
    append_jsonl(experiment_dir / TRIALS_FILE, record)


def read_trial_log(experiment_dir: Path) -> dict[str, dict[str, Any]]:
    """How each trial that ended, ended (the last entry of a trial wins), by trial id."""
    return {str(r["trial_id"]): r for r in read_jsonl(experiment_dir / TRIALS_FILE)}


def has_results(experiment_dir: Path) -> bool:
    """Whether the search wrote its results table (it ended, or was interrupted)."""
    return (experiment_dir / RESULTS_FILE).exists()


def read_results(experiment_dir: Path) -> pd.DataFrame:
    """The results table a search wrote (one row per trial)."""
    return pd.read_parquet(experiment_dir / RESULTS_FILE)


def write_results(experiment_dir: Path, table: pd.DataFrame) -> Path:
    """Write the results table (the caller makes it Parquet-safe)."""
    path = experiment_dir / RESULTS_FILE
    table.to_parquet(path, index=False)
    return path
