"""`gansearch compare` (gansearch.commands.compare): the best objective against trial-epochs,
from a search's reports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from gansearch.cli import main
from gansearch.experiment import SPACE_COPY, append_report, save_setup

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _experiment(directory: Path, reports: list[tuple[str, dict]]) -> Path:
    save_setup(directory, FIXTURES / "small_space.yaml", {}, tracking_uri=None)
    for trial_id, result in reports:
        append_report(directory, trial_id, result)
    return directory


def _report(session: str, trained: int, at: float, value: float) -> dict:
    return {"session": session, "session_epochs": trained, "reported_at": at, "valid_ll": value}


def test_compare_draws_best_so_far_against_trial_epochs(tmp_path, capsys) -> None:
    fast = _experiment(
        tmp_path / "fast",
        [
            ("a", _report("s1", 1, 1.0, -3.0)),
            ("b", _report("s2", 1, 2.0, 4.0)),
            ("a", _report("s1", 2, 3.0, 1.0)),
        ],
    )
    slow = _experiment(
        tmp_path / "slow", [("c", _report("s3", e, float(e), float(e))) for e in (1, 2, 3)]
    )
    out, table = tmp_path / "budget.png", tmp_path / "budget.csv"
    args = ["compare", str(fast), str(slow), "--labels", "fast", "slow", "--out", str(out)]
    code = main([*args, "--reference", "paper=2.5", "--csv", str(table)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fast: best valid_ll 4.00 (trial b), reached after 2 of 3 trial-epochs" in printed
    assert "slow: best valid_ll 3.00 (trial c), reached after 3 of 3 trial-epochs" in printed
    assert Image.open(out).size[0] > 300
    curves = pd.read_csv(table)
    fast_curve = curves[curves["search"] == "fast"]
    assert fast_curve["trial_epochs"].tolist() == [1, 2, 3]
    assert fast_curve["best"].tolist() == [-3.0, 4.0, 4.0]


def test_compare_refuses_what_is_not_an_experiment(tmp_path, capsys) -> None:
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert f"{tmp_path}: no {SPACE_COPY}" in capsys.readouterr().err
    empty = _experiment(tmp_path / "empty", [])
    assert main(["compare", str(empty), "--out", str(tmp_path / "x.png")]) == 2
    assert "no trial has reported yet" in capsys.readouterr().err
