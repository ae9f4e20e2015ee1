"""The experiment directory: one owner for its layout, for what is stored there and for finding it.

    <results dir>/<name>/
        search_space.yaml   the space file the search started with (a resume runs this copy)
        gansearch.json      the budget in force and the MLflow tracking URI (null: the default)
        reports.jsonl       every trial report, in the order the driver received them
        trials.jsonl        how each trial ended: status, reason, wall time
        results.parquet     one row per trial, written when the search ends or is interrupted
        report/             gansearch report's Table 1 and figures
        .gansearch.lock     held by the one process that writes here (who: host, PID, command)
        driver.log          Ray's and Optuna's own messages, kept out of the terminal
        train_trial_*/      Ray Tune's trial directories, with the checkpoints

gansearch.search writes the setup and the reports; gansearch.report and the commands read them
through the functions here, never by file name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import stat
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gansearch.errors import ConfigError, UsageError
from gansearch.files import (
    NO_FOLLOW,
    append_jsonl,
    atomic_path,
    foreign_owner,
    foreign_writer,
    read_jsonl,
    refused_link,
    user_name,
    write_bytes,
    write_text,
)
from gansearch.inputs import read_bounded
from gansearch.outcomes import UNUSABLE
from gansearch.schema import MAX_YAML_BYTES

SPACE_COPY = "search_space.yaml"
META_FILE = "gansearch.json"
REPORTS_FILE = "reports.jsonl"
TRIALS_FILE = "trials.jsonl"
RESULTS_FILE = "results.parquet"
LOCK_FILE = ".gansearch.lock"
DRIVER_LOG = "driver.log"  # Ray's and Optuna's messages during a search
# Written in place (not replaced whole), so never through a link: refused when one is a link.
IN_PLACE_FILES = (LOCK_FILE, DRIVER_LOG, REPORTS_FILE, TRIALS_FILE)
CHECKPOINT_FILE = "trainer.pt"  # a trial's trainer state inside each of its Tune checkpoints
# An experiment's name is one path component: it cannot leave the results directory.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
NAME_RULE = "letters, digits, '-', '_' and '.', starting with a letter or digit, at most 128"


def check_name(name: str, option: str = "--name") -> str:
    """`name` if it is a valid experiment name; a UsageError naming `option` otherwise."""
    if not isinstance(name, str) or re.fullmatch(NAME_PATTERN, name) is None:
        shown = repr(name) if len(str(name)) <= 60 else repr(str(name)[:60]) + "..."
        raise UsageError(
            f"{option} {shown}: an experiment name is one directory inside the results "
            f"directory: {NAME_RULE}"
        )
    return name


def experiment_path(results_dir: Path, name: str, option: str = "--name") -> Path:
    """Where experiment `name` lives in `results_dir` (the name checked first)."""
    return Path(results_dir) / check_name(name, option)


def save_setup(
    experiment_dir: Path,
    space_file: Path,
    budget: Mapping[str, Any],
    tracking_uri: str | None,
    optuna_storage: str | None = None,
) -> None:
    """Store what a search starts with: a copy of its space file, the budget in force (the
    file's with the command line's changes), its MLflow tracking URI and its Optuna storage."""
    experiment_dir.mkdir(parents=True, exist_ok=True)
    # Read once more, bounded: the file may have been swapped for a device or a FIFO since.
    text = read_bounded(space_file, MAX_YAML_BYTES, "a search space", ConfigError)
    write_bytes(experiment_dir / SPACE_COPY, text)
    meta = {
        "budget": dict(budget),
        "tracking_uri": tracking_uri,
        "optuna_storage": optuna_storage,
        "search_id": uuid.uuid4().hex,  # finds its MLflow runs wherever the directory moves
    }
    write_text(experiment_dir / META_FILE, json.dumps(meta, indent=2))


def is_experiment(directory: Path) -> bool:
    """Whether `directory` holds a search's stored space."""
    return (directory / SPACE_COPY).is_file()


def _stored_meta(experiment_dir: Path) -> dict[str, Any]:
    """gansearch.json, which every search writes when it starts; a UsageError that names the
    file when it is missing or cannot be read."""
    path = experiment_dir / META_FILE
    if not path.exists():
        raise UsageError(
            f"{path}: missing; it records the search's budget, MLflow store and search id: "
            "restore it from a copy of the experiment directory"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("budget", {}), dict):
            raise ValueError("not a mapping with a budget")
        uri = meta.get("tracking_uri")
        if uri is not None and not isinstance(uri, str):
            raise ValueError("tracking_uri is not a string")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(
            f"{path}: unreadable ({exc}); it records the search's budget, MLflow store and "
            "search id: restore it from a copy of the experiment directory"
        ) from None
    return meta


def stored_budget(experiment_dir: Path) -> dict[str, Any]:
    """The budget a search ran with, as save_setup stored it (space.stored_space applies it)."""
    return dict(_stored_meta(experiment_dir).get("budget") or {})


def stored_tracking_uri(experiment_dir: Path) -> str | None:
    """The tracking URI a search was started with (None: the default store)."""
    return _stored_meta(experiment_dir).get("tracking_uri")


def stored_optuna_storage(experiment_dir: Path) -> str | None:
    """The Optuna storage URL a search was started with (None: none recorded)."""
    value = _stored_meta(experiment_dir).get("optuna_storage")
    return value if isinstance(value, str) and value else None


def optuna_study_name(experiment_dir: Path) -> str:
    """The name of the search's Optuna study: the experiment's, made unique by its search id
    (a later search of the same name in the same storage gets a study of its own)."""
    search_id = stored_search_id(experiment_dir)
    return f"{experiment_dir.name}-{search_id[:8]}" if search_id else experiment_dir.name


def stored_search_id(experiment_dir: Path) -> str | None:
    """The search's identity, tagged on its MLflow parent run (None before it was recorded)."""
    value = _stored_meta(experiment_dir).get("search_id")
    return value if isinstance(value, str) and value else None


def experiments(results_dir: Path) -> list[str]:
    """The names of the finished (or interrupted) searches in `results_dir`."""
    if not results_dir.is_dir():
        return []
    return sorted(p.parent.name for p in results_dir.glob(f"*/{RESULTS_FILE}"))


def find_experiment(results_dir: Path, name: str | None, option: str = "--experiment") -> Path:
    """The experiment directory of search `name` in `results_dir` (the only one if no name)."""
    results_dir = Path(results_dir).expanduser()
    if name is not None:
        path = experiment_path(results_dir, name, option)
        if not has_results(path):
            known = experiments(results_dir)
            hint = f"; searches there: {', '.join(known)}" if known else ""
            raise UsageError(
                f"{option} {name}: no finished search at {path} (no {RESULTS_FILE}){hint}"
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
    """The results table a search wrote (one row per trial); a UsageError that says how to
    rebuild it when it cannot be read."""
    path = experiment_dir / RESULTS_FILE
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UsageError(
            f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:200]}); rebuild it from the "
            f"search's own state with `gansearch run --space {experiment_dir / SPACE_COPY} "
            f"--name {experiment_dir.name} --results-dir {experiment_dir.parent} --resume`"
        ) from None
    for column in ("checkpoint", "best_checkpoint"):  # stored relative to the experiment
        if column in table:
            table[column] = [_absolute(experiment_dir, c) for c in table[column]]
    if "pareto" in table:  # a multi-objective search's front: True, or False for the rest
        table["pareto"] = table["pareto"].fillna(False).astype(bool)
    return table


def find_trial(experiment_dir: Path, trial: str | None, option: str) -> dict[str, Any]:
    """A trial's row of the results table, with `checkpoint_file`: the trainer state of its
    best validation evaluation. `trial` is a trial id or the one id ending in it (`00002`);
    None is the best trial that left a checkpoint (the table is ranked best first)."""
    rows = read_results(experiment_dir).to_dict("records")
    for row in rows:
        kept = row.get("best_checkpoint") or row.get("checkpoint")
        row["checkpoint_file"] = (
            Path(kept) / CHECKPOINT_FILE if isinstance(kept, str) and kept else None
        )
    listing = ", ".join(f"{r['trial_id']} ({r['status']})" for r in rows) or "none"
    if trial is None:
        for row in rows:
            if row["status"] not in UNUSABLE and row["checkpoint_file"] is not None:
                return row
        raise UsageError(
            f"{option} {experiment_dir.name}: no trial left a checkpoint to go on from "
            f"(trials: {listing})"
        )
    matches = [r for r in rows if str(r["trial_id"]) == trial] or [
        r for r in rows if str(r["trial_id"]).endswith(trial)
    ]
    if len(matches) != 1:
        how = "no trial" if not matches else "several trials match"
        raise UsageError(
            f"{option} {experiment_dir.name}/{trial}: {how} {trial!r} in {experiment_dir}; "
            f"its trials: {listing}"
        )
    row = matches[0]
    if row["checkpoint_file"] is None or not Path(row["checkpoint_file"]).is_file():
        raise UsageError(
            f"{option} {experiment_dir.name}/{trial}: trial {row['trial_id']} ({row['status']}) "
            f"left no checkpoint at {row['checkpoint_file'] or 'its trial directory'}"
        )
    return row


def write_results(experiment_dir: Path, table: pd.DataFrame) -> Path:
    """Write the results table atomically, with checkpoint paths relative to the experiment
    directory, so that a copied directory reads its own; list-valued parameters (layer widths)
    become strings, so that Parquet has one type a column."""
    path = experiment_dir / RESULTS_FILE
    table = table.copy()
    for column in table.columns:
        if table[column].map(lambda v: isinstance(v, (list, tuple))).any():
            table[column] = table[column].map(str)
    for column in ("checkpoint", "best_checkpoint"):
        if column in table:
            table[column] = [_relative(experiment_dir, c) for c in table[column]]
    with atomic_path(path) as staging:
        table.to_parquet(staging, index=False)
    return path


def _relative(experiment_dir: Path, value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    try:
        return str(Path(value).resolve().relative_to(experiment_dir.resolve()))
    except ValueError:
        return value  # outside the experiment (a cluster's storage): kept as it is


def _absolute(experiment_dir: Path, value: Any) -> Any:
    if not isinstance(value, str) or not value or Path(value).is_absolute():
        return value
    return str(experiment_dir.resolve() / value)


# --------------------------------------------------------------------------- one writer


@contextlib.contextmanager
def experiment_lock(experiment_dir: Path, say: Any = None) -> Iterator[None]:
    """Hold the experiment directory for one process (a search or a report) until it exits.

    An exclusive lock (flock) on `.gansearch.lock`, which records the holder's host, PID, start
    time and command. The operating system releases it however the holder ends (SIGKILL too),
    so a lock file left by a dead process is only reported, never in the way. A second process
    gets a UsageError that names the holder. The file is removed on release, and with it the
    directories the lock created if they hold nothing else (a run that failed before starting).

    Before anything is written, the directory must be this user's and writable by nobody else
    (_check_own_directory), and the files written there in place (the lock, the logs) must not
    be symbolic links: a directory someone else made in a shared results directory could
    otherwise aim gansearch's writes at any file of the user's.
    """
    experiment_dir = Path(experiment_dir)
    created = [d for d in (experiment_dir, *experiment_dir.parents) if not d.exists()]
    try:
        experiment_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        dir_fd = os.open(experiment_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(
            f"{experiment_dir}: cannot write there ({exc.strerror or type(exc).__name__}): "
            "choose a --results-dir you can write to"
        ) from None
    try:
        _check_own_directory(experiment_dir, dir_fd)
        fd = _take_lock(experiment_dir, dir_fd)
    except BaseException:
        os.close(dir_fd)
        raise
    try:
        stale = _read_holder(fd)
        if stale and say is not None:
            say(f"{experiment_dir}: the last process to use it ({_describe_holder(stale)}) ended "
                "without releasing it; it is not running, so this one takes over")  # fmt: skip
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(LOCK_FILE, dir_fd=dir_fd)
        os.close(fd)
        os.close(dir_fd)
        with contextlib.suppress(OSError):
            for directory in created:  # innermost first; only empty ones: nothing started there
                directory.rmdir()


def _check_own_directory(experiment_dir: Path, dir_fd: int) -> None:
    """Refuse to write into an experiment directory (`dir_fd`, opened) that is not this user's
    or that its group or other users can write (they could plant links or state there), or
    whose lock or logs are symbolic links: a UsageError naming the path and why."""
    link = os.lstat(experiment_dir)
    if stat.S_ISLNK(link.st_mode) and foreign_owner(link):
        why = f"is a symbolic link of user {user_name(link.st_uid)}, not yours"
        _foreign_directory(experiment_dir, why)
    if why := foreign_writer(os.fstat(dir_fd)):
        _foreign_directory(experiment_dir, why)
    for name in IN_PLACE_FILES:
        try:
            entry = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(entry.st_mode):
            raise UsageError(refused_link(experiment_dir / name))


def _foreign_directory(experiment_dir: Path, why: str) -> None:
    fix = ""
    if why.startswith("can be written"):
        fix = f" (if you trust what is in it: chmod -R go-w {experiment_dir})"
    raise UsageError(
        f"{experiment_dir} {why}{fix}; gansearch writes only into an experiment directory that "
        "nobody else can write: choose another --name or --results-dir"
    )


def _take_lock(experiment_dir: Path, dir_fd: int) -> int:
    """The lock file, opened (never through a link) and locked by this process."""
    path = experiment_dir / LOCK_FILE
    while True:
        try:
            fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | NO_FOLLOW, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UsageError(refused_link(path)) from None
            raise UsageError(
                f"{experiment_dir}: cannot write there ({exc.strerror or type(exc).__name__}): "
                "choose a --results-dir you can write to"
            ) from None
        info = os.fstat(fd)
        why = "is not a regular file" if not stat.S_ISREG(info.st_mode) else foreign_owner(info)
        if why:
            os.close(fd)
            raise UsageError(f"{path} {why}: remove it, then start again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(_read_holder(fd))
            os.close(fd)
            raise UsageError(
                f"{experiment_dir} is in use by another gansearch process ({holder}): wait for "
                "it to end, or stop it (Ctrl-C) and resume"
            ) from None
        try:  # the file may have been removed by a holder that released it meanwhile
            same = info.st_ino == os.stat(LOCK_FILE, dir_fd=dir_fd, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe_holder(holder: Mapping[str, Any]) -> str:
    if not holder:
        return "holder unknown"
    command = str(holder.get("command", ""))
    command = command if len(command) <= 120 else command[:117] + "..."
    return (
        f"PID {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}: {command}"
    )


# --------------------------------------------------------------------------- trust


@contextlib.contextmanager
def no_foreign_writes() -> Iterator[None]:
    """Create files that only their owner can write (umask + go-w) while the block runs, so
    that a resumed search can check that nobody else wrote its state (check_trusted)."""
    previous = os.umask(0o022)
    os.umask(previous | 0o022)
    try:
        yield
    finally:
        os.umask(previous)


def check_trusted(experiment_dir: Path, option: str = "--resume") -> None:
    """Refuse an experiment directory that someone other than this user could have written.

    Ray Tune restores a search from pickles (tuner.pkl, its experiment and searcher state): a
    crafted file would run code as the user who resumes. So every file and directory in the
    experiment must belong to this user, be writable by nobody else, and symbolic links must
    point at such files.
    """
    entries = [Path(experiment_dir)]
    for root, dirs, files in os.walk(experiment_dir):
        entries += [Path(root) / name for name in (*dirs, *files)]
    for path in entries:
        entry = path.lstat()
        if why := foreign_owner(entry):
            _untrusted(option, path, why)
        if stat.S_ISLNK(entry.st_mode):
            try:
                entry = path.stat()
            except OSError:
                _untrusted(option, path, "is a broken symbolic link")
            if foreign_owner(entry):
                _untrusted(option, path, "links to a file that is not yours")
        if why := foreign_writer(entry):
            _untrusted(
                option,
                path,
                f"{why} (if you trust what is in it: chmod -R go-w {experiment_dir})",
            )


def _untrusted(option: str, path: Path, why: str) -> None:
    raise UsageError(
        f"{option}: {path} {why}. A search resumes from Ray's pickled state, which runs code: "
        "gansearch resumes only an experiment that nobody else could have written"
    )
