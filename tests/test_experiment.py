"""The experiment directory's owner (gansearch.experiment): names that stay inside the results
directory, one process at a time, state that nobody else wrote, and a results directory that
cannot be written or files that are damaged, each with a clear message."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pandas as pd
import pytest

from gansearch import experiment as experiment_module
from gansearch import files
from gansearch.cli import main
from gansearch.errors import UsageError
from gansearch.experiment import (
    DRIVER_LOG,
    IN_PLACE_FILES,
    LOCK_FILE,
    REPORTS_FILE,
    TRIALS_FILE,
    append_report,
    append_trial_end,
    check_name,
    check_trusted,
    experiment_lock,
    experiment_path,
    no_foreign_writes,
)
from tests.support.tracked_search import TRIALS

SMALL = Path(__file__).parent / "fixtures" / "small_space.yaml"
ESCAPES = ["../x", "..", ".", "/abs/path", "a/b", "", "-rf", "x\n", "a" * 129, "ü"]


@pytest.mark.parametrize("name", ESCAPES)
def test_names_that_would_leave_the_results_directory_are_refused(name):
    with pytest.raises(UsageError, match="an experiment name is one directory"):
        check_name(name)


@pytest.mark.parametrize("name", ["digits-quick", "mnist_laptop", "run.2", "A1", "a" * 128])
def test_plain_names_are_accepted_and_stay_inside(tmp_path, name):
    path = experiment_path(tmp_path, name)
    assert path.parent == tmp_path and path.name == name


@pytest.mark.parametrize("name", ["../x", "/tmp/elsewhere", ".."])
def test_run_refuses_an_escaping_name_before_writing_anything(tmp_path, capsys, name):
    results = tmp_path / "results"
    code = main(["run", "--space", str(SMALL), "--results-dir", str(results), "--name", name])
    err = capsys.readouterr().err
    assert code == 2 and "--name" in err and "one directory inside" in err
    assert "Traceback" not in err
    assert not any(tmp_path.rglob("*.json")) and not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["report", "ui"])
def test_report_and_ui_refuse_an_escaping_experiment(tmp_path, capsys, command):
    code = main([command, "--results-dir", str(tmp_path), "--experiment", "../x"])
    err = capsys.readouterr().err
    assert code == 2 and "--experiment '../x'" in err and "Traceback" not in err


# --------------------------------------------------------------------------- one process


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    directory = tmp_path / "exp"
    with experiment_lock(directory):
        holder = json.loads((directory / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(
            UsageError, match=rf"in use by another gansearch process \(PID {os.getpid()} on"
        ):
            with experiment_lock(directory):
                pass
    assert not directory.exists()  # released, and the empty directory it made is gone
    with experiment_lock(directory):  # free again
        (directory / "kept").write_text("x")
    assert (directory / "kept").exists() and not (directory / LOCK_FILE).exists()


def test_a_lock_file_left_by_a_dead_process_is_reported_and_taken_over(tmp_path):
    directory = tmp_path / "exp"
    directory.mkdir()
    dead = {"host": "elsewhere", "pid": 999999, "started": "yesterday", "command": "gansearch run"}
    (directory / LOCK_FILE).write_text(json.dumps(dead))
    said = []
    with experiment_lock(directory, say=said.append):
        pass
    assert len(said) == 1 and "PID 999999 on elsewhere" in said[0] and "takes over" in said[0]


@pytest.mark.parametrize("resume", [False, True])
def test_run_refuses_an_experiment_another_process_holds(tmp_path, capsys, resume):
    with experiment_lock(tmp_path / "small"):
        args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path)]
        code = main([*args, "--resume"] if resume else args)
    err = capsys.readouterr().err
    assert code == 2 and f"in use by another gansearch process (PID {os.getpid()}" in err
    assert "Traceback" not in err and not (tmp_path / "small").exists()


def test_report_refuses_while_the_search_holds_the_experiment(tmp_path, capsys):
    experiment = tmp_path / "small"
    experiment.mkdir()
    (experiment / "results.parquet").write_bytes(b"")  # a search that has written results
    with experiment_lock(experiment):
        code = main(["report", "--results-dir", str(tmp_path), "--experiment", "small"])
    err = capsys.readouterr().err
    assert code == 2 and "in use by another gansearch process" in err


# --------------------------------------------------------------------------- trust


def _fake_experiment(root: Path, marker: Path) -> Path:
    """An experiment directory whose tuner.pkl runs code when unpickled (it creates `marker`)."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("pwned",))

    experiment = root / "small"
    experiment.mkdir(mode=0o755)
    (experiment / "search_space.yaml").write_text(SMALL.read_text())
    (experiment / "tuner.pkl").write_bytes(pickle.dumps(Payload()))
    return experiment


def test_resume_refuses_state_that_others_could_have_written(tmp_path, capsys):
    marker = tmp_path / "marker"
    experiment = _fake_experiment(tmp_path, marker)
    os.chmod(experiment / "tuner.pkl", 0o664)  # group-writable: anyone in the group could plant it
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{experiment / 'tuner.pkl'} can be written by its group" in err
    assert "chmod -R go-w" in err and "Traceback" not in err
    assert not marker.exists()  # nothing was unpickled


def test_check_trusted_accepts_own_files_and_refuses_links_out(tmp_path):
    experiment = _fake_experiment(tmp_path, tmp_path / "marker")
    check_trusted(experiment)  # all ours, writable by us only
    elsewhere = tmp_path / "elsewhere.pkl"
    elsewhere.write_bytes(b"x")
    os.chmod(elsewhere, 0o666)
    (experiment / "link.pkl").symlink_to(elsewhere)
    with pytest.raises(UsageError, match="link.pkl can be written by its group and other users"):
        check_trusted(experiment)


def test_check_trusted_refuses_files_of_another_user(tmp_path, monkeypatch):
    experiment = _fake_experiment(tmp_path, tmp_path / "marker")
    monkeypatch.setattr(files, "current_uid", lambda: os.getuid() + 4242)  # someone else's now
    owner = files.user_name(os.getuid())
    with pytest.raises(UsageError, match=rf"{experiment} belongs to user {owner}, not to you"):
        check_trusted(experiment)


def test_files_of_a_search_are_written_without_group_or_other_write(tmp_path):
    with no_foreign_writes():
        (tmp_path / "f").write_text("x")
        (tmp_path / "d").mkdir()
    assert (tmp_path / "f").stat().st_mode & 0o022 == 0
    assert (tmp_path / "d").stat().st_mode & 0o022 == 0


# --------------------------------------------------------------------------- no writes elsewhere


def _planted(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """An experiment directory whose file `name` is a link to a file of the user's."""
    experiment = tmp_path / "small"
    experiment.mkdir(mode=0o755)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (experiment / name).symlink_to(victim)
    return experiment, victim


@pytest.fixture
def no_work(monkeypatch):
    """A search or report that gets past the experiment directory's checks fails at once,
    instead of starting Ray or evaluating: a missing refusal fails the test quickly."""
    import gansearch.report
    import gansearch.search.driver

    def started(*args, **kwargs):
        raise AssertionError("the command went past the experiment directory's checks")

    monkeypatch.setattr(gansearch.search.driver, "_run_locked", started)
    monkeypatch.setattr(gansearch.report, "make_report", started)


@pytest.mark.parametrize("name", IN_PLACE_FILES)
def test_a_linked_lock_or_log_refuses_the_lock_and_leaves_the_target(tmp_path, name):
    experiment, victim = _planted(tmp_path, name)
    with pytest.raises(UsageError, match=rf"{experiment / name} is a symbolic link \(to {victim}"):
        with experiment_lock(experiment):
            pass
    assert victim.read_text() == "precious" and (experiment / name).is_symlink()
    assert sorted(p.name for p in experiment.iterdir()) == [name]


def test_a_lock_file_linked_after_the_check_is_still_not_followed(tmp_path, monkeypatch):
    experiment, victim = _planted(tmp_path, LOCK_FILE)
    monkeypatch.setattr(experiment_module, "_check_own_directory", lambda *args: None)
    with pytest.raises(UsageError, match=rf"{experiment / LOCK_FILE} is a symbolic link"):
        with experiment_lock(experiment):
            pass
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("command", ["run", "resume", "report"])
@pytest.mark.parametrize("name", [LOCK_FILE, DRIVER_LOG])
def test_run_resume_and_report_refuse_a_linked_lock_or_log(
    tmp_path, capsys, no_work, command, name
):
    experiment, victim = _planted(tmp_path, name)
    (experiment / "results.parquet").write_bytes(b"")  # report looks for a finished search
    if command == "report":
        args = ["report", "--results-dir", str(tmp_path), "--experiment", "small"]
    else:
        args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path)]
        args += ["--resume"] if command == "resume" else []
    assert main(args) == 2
    err = _err(capsys)
    assert f"{experiment / name} is a symbolic link (to {victim})" in err
    assert "remove the link (the file it points at was not changed)" in err
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in experiment.iterdir()) == sorted([name, "results.parquet"])


@pytest.mark.parametrize(
    ("name", "append"),
    [
        (REPORTS_FILE, lambda d: append_report(d, "t1", {"epoch": 1})),
        (TRIALS_FILE, lambda d: append_trial_end(d, "t1", "ok", "done", 1.0)),
    ],
)
def test_the_report_and_trial_logs_are_never_appended_through_a_link(tmp_path, name, append):
    experiment, victim = _planted(tmp_path, name)
    with pytest.raises(UsageError, match=rf"{experiment / name} is a symbolic link"):
        append(experiment)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(("mode", "who"), [(0o775, "its group"), (0o757, "other users")])
@pytest.mark.parametrize("resume", [False, True])
def test_run_refuses_an_experiment_directory_others_can_write(
    tmp_path, capsys, no_work, mode, who, resume
):
    experiment = tmp_path / "small"
    experiment.mkdir()
    experiment.chmod(mode)
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path)]
    assert main([*args, "--resume"] if resume else args) == 2
    err = _err(capsys)
    assert f"{experiment} can be written by {who} (if you trust what is in it: chmod" in err
    assert "gansearch writes only into an experiment directory that nobody else can" in err
    assert list(experiment.iterdir()) == []  # not even the lock file


@pytest.mark.parametrize("command", ["run", "resume", "report"])
def test_an_experiment_directory_of_another_user_is_refused(
    tmp_path, capsys, monkeypatch, no_work, command
):
    experiment = tmp_path / "small"
    experiment.mkdir(mode=0o755)
    (experiment / "results.parquet").write_bytes(b"")
    monkeypatch.setattr(files, "current_uid", lambda: os.getuid() + 4242)  # someone else's now
    if command == "report":
        args = ["report", "--results-dir", str(tmp_path), "--experiment", "small"]
    else:
        args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path)]
        args += ["--resume"] if command == "resume" else []
    assert main(args) == 2
    err = _err(capsys)
    assert f"{experiment} belongs to user {files.user_name(os.getuid())}, not to you" in err
    assert [p.name for p in experiment.iterdir()] == ["results.parquet"]


def test_a_new_experiment_directory_passes_its_own_check(tmp_path):
    directory = tmp_path / "results" / "exp"
    with experiment_lock(directory):
        assert directory.stat().st_mode & 0o022 == 0
        (directory / "kept").write_text("x")
    assert (directory / "kept").exists()


# --------------------------------------------------------------------------- unwritable, damaged


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _copy(tracked_search, tmp_path: Path) -> Path:
    """A copy of the tracked search's results directory somewhere else."""
    import shutil

    copy = tmp_path / "copied"
    shutil.copytree(tracked_search.root, copy, symlinks=True)
    return copy


def test_a_results_directory_that_cannot_be_written_fails_before_anything_starts(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    space = "tests/fixtures/small_space.yaml"
    started = time.monotonic()
    assert main(["run", "--space", space, "--results-dir", str(blocker / "runs")]) == 2
    err = _err(capsys)
    assert f"{blocker / 'runs' / 'small'}: cannot write there" in err
    assert time.monotonic() - started < 30  # no Ray, no MLflow store was started


@pytest.mark.slow
def test_damaged_results_and_metadata_get_clear_messages_and_a_way_back(
    tracked_search, tmp_path, capsys
):
    import shlex
    import subprocess
    import sys

    copy = _copy(tracked_search, tmp_path)
    experiment = copy / "small"
    (experiment / "results.parquet").write_bytes(b"PAR1 this is not parquet")
    assert main(["report", "--results-dir", str(copy), "--experiment", "small"]) == 2
    err = capsys.readouterr().err
    assert f"{experiment / 'results.parquet'}: unreadable" in err and "Traceback" not in err
    words = shlex.split(err.split("rebuild it from the search's own state with `")[1].split("`")[0])
    rebuilt = subprocess.run(
        [sys.executable, "-m", "gansearch.cli", *words[1:], "--report-top", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len(pd.read_parquet(experiment / "results.parquet")) == TRIALS

    meta = experiment / "gansearch.json"
    meta.write_text("{ not json")
    for args in (
        ["report", "--results-dir", str(copy), "--experiment", "small"],
        ["ui", "--results-dir", str(copy), "--experiment", "small"],
        ["run", "--space", str(experiment / "search_space.yaml"), "--results-dir", str(copy)],
    ):
        code = main([*args, "--resume"] if args[0] == "run" else args)
        err = capsys.readouterr().err
        assert code == 2 and f"{meta}: unreadable" in err and "Traceback" not in err, args
