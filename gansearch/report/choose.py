"""Which trials of a finished search the report evaluates: the best by the objective, or the
first members of a multi-objective search's Pareto front. Only trials that left a checkpoint
and did not diverge or fail qualify."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from gansearch.experiment import CHECKPOINT_FILE
from gansearch.outcomes import DIVERGED, FAILED

if TYPE_CHECKING:
    import pandas as pd

    from gansearch.space import SearchSpace


def choose_trials(results: pd.DataFrame, space: SearchSpace, top: int) -> pd.DataFrame:
    """The trials to report on: the Pareto front's first `top` for several objectives, else
    the best `top` by the objective (validation log-likelihood when it is not a column)."""
    objective = space.objective
    if objective.multi:
        return pareto_trials(results, space, top)
    if objective.primary in results:
        return best_trials(results, top, objective.primary, objective.modes[0])
    return best_trials(results, top)


def best_trials(
    results: pd.DataFrame, top: int, metric: str = "valid_ll", mode: str = "max"
) -> pd.DataFrame:
    """The `top` trials with the best `metric` (validation log-likelihood by default) that left
    a checkpoint."""
    ok = results[metric].map(lambda v: v is not None and math.isfinite(v))
    ok &= ~results["status"].isin([DIVERGED, FAILED])
    ok &= results["checkpoint"].map(
        lambda c: isinstance(c, str) and (Path(c) / CHECKPOINT_FILE).exists()
    )
    ranked = results[ok].sort_values(metric, ascending=mode == "min", kind="stable")
    return ranked.head(top).reset_index(drop=True)


def pareto_trials(results: pd.DataFrame, space: SearchSpace, top: int) -> pd.DataFrame:
    """The first `top` trials of a multi-objective search's Pareto front (the `pareto` column
    of results.parquet), by the final value of the primary objective, that left a checkpoint."""
    objective = space.objective
    front = results[results["pareto"]] if "pareto" in results else None
    if front is None or front.empty:
        return results.iloc[0:0]
    return best_trials(front, top, f"final_{objective.primary}", objective.modes[0])
