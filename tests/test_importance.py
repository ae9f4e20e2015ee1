"""Which hyperparameters mattered: Optuna's fANOVA and PED-ANOVA over a search's trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gansearch.importance import importance_markdown, importances
from gansearch.space import load_space

FIXTURES = Path(__file__).parent / "fixtures"
PARETO = Path(__file__).parents[1] / "search_spaces" / "digits_pareto.yaml"


def _results(space, n: int, seed: int = 0) -> pd.DataFrame:
    """A results table in which valid_ll depends on optim.lr_d alone (fid on optim.k)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        lr = float(np.exp(rng.uniform(np.log(0.01), np.log(0.5))))
        k = int(rng.integers(1, 4))
        units = [[64, 64], [128, 128]][int(rng.integers(0, 2))]
        rows.append(
            {
                "trial_id": f"t{i}",
                "status": ["finished", "stopped early"][i % 2],
                "valid_ll": 10.0 * np.log(lr) + rng.normal(0, 0.01),
                "fid": 50.0 * k + rng.normal(0, 0.01),
                "optim.lr_d": lr,
                "optim.k": k,
                "generator.units": np.array(units),
            }
        )
    rows.append({**rows[0], "trial_id": "bad", "status": "diverged", "valid_ll": 1e9})
    return pd.DataFrame(rows)


def test_the_parameter_that_drives_the_objective_comes_first():
    space = load_space(FIXTURES / "small_space.yaml")
    found = importances(_results(space, 40), space)
    assert set(found.table["param"]) == {p.key for p in space.params}  # searched ones only
    for evaluator in ("fanova", "ped_anova"):
        ranked = found.table[found.table["evaluator"] == evaluator].sort_values(
            "importance", ascending=False
        )
        assert ranked["param"].iloc[0] == "optim.lr_d", ranked
        assert ranked["importance"].sum() == pytest.approx(1.0)
    assert found.n_trials == 40  # the diverged trial does not count
    assert found.warning == ""
    text = importance_markdown(found)
    assert "| optim.lr_d |" in text and "from 40 trials" in text


def test_few_trials_come_with_a_warning():
    space = load_space(FIXTURES / "small_space.yaml")
    found = importances(_results(space, 6), space)
    assert "only 6 trials for 3 parameters" in found.warning
    assert "Warning: only 6 trials" in importance_markdown(found)
    assert importances(_results(space, 1).iloc[:1], space).table.empty


def test_each_objective_of_a_multi_objective_search_gets_its_own():
    space = load_space(PARETO)
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        k = int(rng.integers(1, 4))
        lr = float(np.exp(rng.uniform(np.log(0.01), np.log(0.5))))
        rows.append(
            {
                "trial_id": f"t{i}",
                "status": "finished",
                "valid_ll": 10.0 * np.log(lr),
                "fid": 50.0 * k,
                "optim.lr_d": lr,
                "optim.lr_g": float(np.exp(rng.uniform(np.log(0.01), np.log(0.5)))),
                "optim.k": k,
                "generator.units": np.array([[128, 128], [256, 256]][i % 2]),
                "discriminator.keep_probs[0]": float(rng.uniform(0.6, 1.0)),
            }
        )
    found = importances(pd.DataFrame(rows), space)
    assert list(dict.fromkeys(found.table["objective"])) == ["valid_ll", "fid"]
    for metric, driver in (("valid_ll", "optim.lr_d"), ("fid", "optim.k")):
        fanova = found.table[
            (found.table["objective"] == metric) & (found.table["evaluator"] == "fanova")
        ]
        assert fanova.sort_values("importance")["param"].iloc[-1] == driver
