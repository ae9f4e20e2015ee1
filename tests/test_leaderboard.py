"""The leaderboard a search prints when it ends."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from gansearch.leaderboard import format_leaderboard
from gansearch.space import load_space

FIXTURES = Path(__file__).parent / "fixtures"


def _row(trial: str, value: float, status: str = "finished", lineage: str = "") -> dict:
    return {
        "trial_id": trial,
        "valid_ll": value,
        "epochs": 3,
        "wall_seconds": 12.5,
        "status": status,
        "lineage": lineage,
        "optim.lr_d": 0.123456,
        "optim.k": 2,
        "generator.units": [64, 64],
    }


def test_the_best_trials_come_with_their_values_and_parameters() -> None:
    space = load_space(FIXTURES / "small_space.yaml")
    table = pd.DataFrame(
        [
            _row("t_00002", 9.5, lineage="epoch 2: copied trial t_00001"),
            _row("t_00001", 4.25),
            _row("t_00003", math.nan, status="diverged"),
        ]
    )
    text = format_leaderboard(table, space, size=2)
    lines = text.splitlines()
    assert lines[0] == "best 2 of 3 trials by valid_ll (highest):"
    assert lines[2].startswith(" 1  t_00002") and "9.50" in lines[2]
    assert "optim.lr_d=0.1235, optim.k=2, generator.units=[64, 64]" in lines[2]
    assert "(final values; epoch 2: copied trial t_00001)" in lines[2]
    assert lines[3].startswith(" 2  t_00001") and "t_00003" not in text
    assert format_leaderboard(table.iloc[0:0], space, size=2) == "no trials ran"
