"""The results table (gansearch.search.results): the best checkpoint chosen on the objective in
its direction, and broken and never-started trials ranked last with what they reported."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gansearch.experiment import append_report, append_trial_end, read_reports, read_trial_log
from gansearch.search.results import best_checkpoint, results_table
from gansearch.space import load_space

SMALL = Path(__file__).parents[1] / "fixtures" / "small_space.yaml"


class _Checkpoint:
    def __init__(self, path: str) -> None:
        self.path = path


class _CheckpointedResult:
    def __init__(self, reports: list[dict], latest: str) -> None:
        self.best_checkpoints = [(_Checkpoint(f"ckpt-{m['epoch']}"), m) for m in reports]
        self.checkpoint = _Checkpoint(latest)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("metric", "expected"),
    [("valid_ll", "ckpt-2"), ("fid", "ckpt-3")],
)
def test_best_checkpoint_is_chosen_on_the_objective_in_its_direction(metric, expected):
    reports = [
        {"epoch": 1, "valid_ll": 1.0, "fid": 90.0},
        {"epoch": 2, "valid_ll": 7.0, "fid": 80.0},
        {"epoch": 3, "valid_ll": 3.0, "fid": 70.0},
        {"epoch": 4, "valid_ll": 7.0, "fid": float("nan")},  # a tie: the earlier epoch wins
    ]
    assert best_checkpoint(_CheckpointedResult(reports, "ckpt-4"), metric) == expected
    assert best_checkpoint(_CheckpointedResult([], "ckpt-9"), metric) == "ckpt-9"  # nothing scored


class _Result:
    """What Tune's ResultGrid yields for one trial, reduced to what results_table reads."""

    def __init__(self, trial_id, metrics, config, path):
        self.metrics, self.config, self.error = metrics, config, None
        self.path, self.checkpoint, self.best_checkpoints = str(path / trial_id), None, []
        self.metrics_dataframe = pd.DataFrame()


def test_broken_and_never_started_trials_rank_last_with_what_they_reported(tmp_path):
    space = load_space(SMALL)
    experiment = tmp_path / "small"
    experiment.mkdir()
    config = {"optim.lr_d": 0.1, "optim.k": 2, "generator.units": "[64, 64]"}
    for epoch, value in ((1, 5.0), (2, 9.0)):  # "broken" scored well before it failed
        append_report(experiment, "broken", {"epoch": epoch, "valid_ll": value})
    append_report(experiment, "broken", {"failed": 1, "error": "cannot resume: x"})
    append_trial_end(experiment, "broken", "failed", "cannot resume: x", 1.0)
    for epoch in (1, 2, 3):
        append_report(experiment, "good", {"epoch": epoch, "valid_ll": -1.0 + epoch})
    append_trial_end(experiment, "good", "finished", "", 2.0)
    grid = [
        _Result("broken", {"failed": 1}, config, tmp_path),
        _Result("good", {"epoch": 3, "valid_ll": 2.0}, config, tmp_path),
        _Result("pending", {}, config, tmp_path),
    ]
    table = results_table(
        grid,
        space,
        trial_log=read_trial_log(experiment),
        reports=read_reports(experiment),
    )
    assert table["trial_id"].tolist()[0] == "good"
    rows = table.set_index("trial_id")
    assert rows.loc["broken", "status"] == "failed" and rows.loc["broken", "epochs"] == 2
    assert rows.loc["broken", "valid_ll"] == 9.0  # what it measured stays in the table
    assert rows.loc["pending", "status"] == "not started"
    assert rows.loc["pending", "optim.k"] == 2  # its parameters, not empty ones
    assert rows.loc["pending", "epochs"] == 0
