"""A search's trials as report histories: the epochs they trained (counted once), the best
value against trial-epochs spent, the copies a pbt trial made, and the ancestry of its networks."""

from __future__ import annotations

import pandas as pd
import pytest

from gansearch.experiment import REPORTS_FILE, append_report, read_reports
from gansearch.histories import (
    EpochCounter,
    Stretch,
    ancestry,
    budget_curve,
    lineage,
    stored_sessions,
)


def test_epoch_counter_counts_each_trained_epoch_once() -> None:
    budget = EpochCounter(10)
    for epoch in (1, 2, 3):  # trial a, first run
        assert budget("a", {"session": "s1", "session_epochs": epoch}) is False
    budget("a", {"session": "s1", "session_epochs": 3})  # a repeated report adds nothing
    assert budget.spent == 3 and not budget.stop_all()
    # Retried from its checkpoint at epoch 2, trial a trains epochs 3 and 4 again: 2 more.
    budget("a", {"session": "s2", "session_epochs": 1})
    budget("a", {"session": "s2", "session_epochs": 2})
    budget("b", {"session": "s3", "session_epochs": 4})
    assert budget.spent == 9 and not budget.stop_all()
    budget("b", {"session": "s3", "session_epochs": 5})
    assert budget.spent == 10 and budget.stop_all()
    budget("c", {"epoch": 3})  # a report without a session (none in old results) counts nothing
    assert budget.spent == 10
    resumed = EpochCounter(12, dict(budget.sessions))
    assert resumed.spent == 10 and not resumed.stop_all()


def test_budget_curve_replays_reports_in_time_order() -> None:
    a = pd.DataFrame(
        {
            "reported_at": [1.0, 3.0, 5.0],
            "session": ["s1"] * 3,
            "session_epochs": [1, 2, 3],
            "valid_ll": [-5.0, 2.0, 1.0],
        }
    )
    b = pd.DataFrame(
        {
            "reported_at": [2.0, 4.0],
            "session": ["s2"] * 2,
            "session_epochs": [1, 2],
            "valid_ll": [-1.0, 7.0],
            "diverged": [0, 0],
        }
    )
    curve = budget_curve({"a": a, "b": b}, "valid_ll")
    assert curve["trial_epochs"].tolist() == [1, 2, 3, 4, 5]
    assert curve["best"].tolist() == [-5.0, -1.0, 2.0, 7.0, 7.0]
    assert curve["trial"].tolist() == ["a", "b", "a", "b", "b"]
    fid = budget_curve({"a": a.assign(fid=[9.0, 4.0, 6.0])}, "fid")  # minimised
    assert fid["best"].tolist() == [9.0, 4.0, 4.0]


def test_report_log_keeps_every_report_and_the_sessions_trained(tmp_path) -> None:
    log = tmp_path / REPORTS_FILE
    append_report(tmp_path, "x", {"session": "s", "session_epochs": 1, "config": {"big": 1}})
    append_report(tmp_path, "x", {"session": "s", "session_epochs": 2, "hp": {"optim.k": 2}})
    append_report(tmp_path, "y", {"session": "t", "session_epochs": 1, "copied_from": "x"})
    with open(log, "a") as f:
        f.write('{"trial_id": "y", "sess')  # a line cut short by a killed driver
    reports = read_reports(tmp_path)
    assert sorted(reports) == ["x", "y"] and "config/big" not in reports["x"]
    assert reports["x"]["hp/optim.k"].tolist()[-1] == 2
    assert stored_sessions(tmp_path) == {("x", "s"): 2, ("y", "t"): 1}


def test_lineage_names_each_copy_and_a_replaced_divergence() -> None:
    history = pd.DataFrame(
        {
            "epoch": [2, 3, 5, 9],
            "diverged": [0, 1, 0, 0],
            "copied_from": ["", "", "t_00002", "t_00004"],
            "copied_epoch": [-1, -1, 4, 8],
        }
    )
    assert lineage(history) == (
        "epoch 4: copied trial t_00002 (replacing its own state, diverged at epoch 3); "
        "epoch 8: copied trial t_00004"
    )
    assert lineage(history.drop(columns="copied_from")) == ""
    # A session that began with a ranking's copy and then diverged: its own copy is a plain one,
    # and the next session's copy replaced the diverged state.
    copied_then_diverged = pd.DataFrame(
        {
            "epoch": [60, 64, 65],
            "diverged": [0, 1, 0],
            "copied_from": ["", "t_00000", "t_00000"],
            "copied_epoch": [-1, 60, 60],
        }
    )
    assert lineage(copied_then_diverged) == (
        "epoch 60: copied trial t_00000; "
        "epoch 60: copied trial t_00000 (replacing its own state, diverged at epoch 64)"
    )


def _report(trial: str, epoch: int, at: float, lr: float, **extra) -> dict:
    return {"trial_id": trial, "epoch": epoch, "reported_at": at, "hp/optim.lr_d": lr, **extra}


def test_ancestry_follows_copies_back_to_the_checkpoint_as_it_was_when_copied() -> None:
    copy = {"copied_from": "t_a", "copied_epoch": 10}
    rows = [
        _report("t_a", 5, 1, 0.1),
        _report("t_a", 10, 2, 0.1),
        # b copies a's epoch-10 checkpoint at time 3...
        _report("t_b", 5, 1, 0.2),
        _report("t_b", 10, 2, 0.2),
        _report("t_b", 15, 3, 0.15, **copy),
        _report("t_b", 20, 4, 0.15),
        # ... and only then does a diverge at epoch 13 and go back to c's epoch-10 checkpoint:
        # a's later epoch 10 is not what b copied.
        _report("t_c", 10, 1, 0.3),
        _report("t_a", 13, 3.5, 0.1, diverged=1),
        _report("t_a", 15, 5, 0.25, copied_from="t_c", copied_epoch=10),
    ]
    reports = {t: g.reset_index(drop=True) for t, g in pd.DataFrame(rows).groupby("trial_id")}
    assert ancestry(reports, "t_b", 20) == [
        Stretch("t_a", 1, 10, {"optim.lr_d": 0.1}),
        Stretch("t_b", 11, 20, {"optim.lr_d": 0.15}, ("t_a", 10)),
    ]
    assert ancestry(reports, "t_a", 15) == [
        Stretch("t_c", 1, 10, {"optim.lr_d": 0.3}),
        Stretch("t_a", 11, 15, {"optim.lr_d": 0.25}, ("t_c", 10)),
    ]
    # b's epoch-10 checkpoint predates its copy: its own values from scratch.
    assert ancestry(reports, "t_b", 10) == [Stretch("t_b", 1, 10, {"optim.lr_d": 0.2})]
    with pytest.raises(ValueError, match="no checkpoint at epoch 13"):
        ancestry(reports, "t_a", 13)  # the diverged state is not a checkpoint
    with pytest.raises(ValueError, match="t_z has no reports"):
        ancestry(reports, "t_z", 5)
