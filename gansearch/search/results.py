"""The results table of a search: one row per trial, from Tune's ResultGrid and the
experiment's logs, ranked best first (results.parquet)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gansearch.histories import (
    best_in_history,
    epochs_trained,
    last_in_history,
    lineage,
    nodes,
)
from gansearch.objectives import METRICS, PARZEN_METRIC, QUALITY_METRICS, pareto_mask
from gansearch.outcomes import (
    DIVERGED,
    FAILED,
    FINISHED,
    INTERRUPTED,
    NOT_STARTED,
    STOPPED_EARLY,
    UNUSABLE,
    trial_outcome,
)

if TYPE_CHECKING:
    from gansearch.space import SearchSpace


def results_table(
    result_grid: Any,
    space: SearchSpace,
    trial_log: Mapping[str, Mapping[str, Any]] | None = None,
    budget_spent: bool = False,
    reports: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per trial: outcome, best objective value(s), epochs, time, parameters.

    `valid_ll` (and `fid` etc. when measured) are the best values over a trial's evaluations;
    `final_<metric>` are those of its last evaluation, the values Optuna recorded and its last
    checkpoint holds. A multi-objective search adds `pareto`: the trial is on the Pareto front
    of the final values. Rows are ranked by the primary objective (front first when multi).
    A trial's status and wall time come from the trial log (`trial_log`, experiment's
    read_trial_log: how each trial that ended, ended, also before a resume); a trial that had
    not ended when the search stopped is finished if it had trained every epoch, stopped early
    if the trial-epoch budget ran out (`budget_spent`), and interrupted otherwise.
    `reports` (experiment.read_reports) gives each trial's reports and lineage.
    """
    objective = space.objective
    measured = [PARZEN_METRIC, *(QUALITY_METRICS if objective.needs_quality else ())]
    rows = []
    for result in result_grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name
        history = (reports or {}).get(trial_id)
        best, best_epoch = best_in_history(history, objective.primary)
        error = str(result.error) if result.error is not None else None
        ended = (trial_log or {}).get(trial_id)
        if ended is not None:
            status, reason = ended["status"], ended["reason"]
            wall = math.nan if ended.get("wall") is None else float(ended["wall"])
        elif error is None and metrics.get("epoch") is None and (history is None or history.empty):
            status, reason, wall = NOT_STARTED, "the search ended before it started", math.nan
        else:
            status, reason, wall = _unended_status(metrics, error, space, budget_spent)
        loop = float(metrics.get("loop_seconds", math.nan))
        row = {
            "trial_id": trial_id,
            "status": status,
            "reason": reason,
            **{m: best_in_history(history, m)[0] for m in measured},
            **{f"final_{m}": last_in_history(history, m) for m in measured},
            "best_epoch": best_epoch,
            "epochs": epochs_trained(metrics, history),
            "sigma": metrics.get("sigma"),
            "threads": metrics.get("threads"),
            "wall_seconds": wall,
            "loop_seconds": loop,
            "overhead_seconds": wall - loop if math.isfinite(wall) else math.nan,
            "checkpoint": result.checkpoint.path if result.checkpoint else None,
            "best_checkpoint": best_checkpoint(result, objective.primary),
            "nodes": nodes(history),  # on a cluster: the Ray nodes it ran on, in order
            "lineage": lineage((reports or {}).get(trial_id)),  # pbt: the checkpoints it copied
        }
        for param in space.params:
            row[param.key] = param.decode((result.config or {}).get(param.key))
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # Trials that failed or diverged come last, whatever they scored before.
    table["_broken"] = table["status"].isin(UNUSABLE)
    sort_by, ascending = ["_broken", objective.primary], [True, objective.modes[0] == "min"]
    if objective.multi:
        finals = table[[f"final_{m}" for m in objective.metrics]].to_numpy(dtype=float)
        ok = ~table["status"].isin([DIVERGED, FAILED]).to_numpy()
        table["pareto"] = pareto_mask(np.where(ok[:, None], finals, np.nan), objective.modes)
        sort_by, ascending = ["pareto", *sort_by], [False, *ascending]
    table = table.sort_values(sort_by, ascending=ascending, na_position="last", ignore_index=True)
    return table.drop(columns="_broken")


def best_summary(table: pd.DataFrame, space: SearchSpace) -> tuple[dict[str, float], dict]:
    """The parent run's view of what the search found: the best objective value and its
    trial (the first row of the ranked table, if it measured one)."""
    metric = space.objective.primary
    if table.empty or metric not in table:
        return {}, {}
    best = table.iloc[0]
    value = best[metric]
    if value is None or not math.isfinite(float(value)):
        return {}, {}
    return {f"best_{metric}": float(value)}, {"gansearch.best_trial": str(best["trial_id"])}


def _unended_status(
    metrics: Mapping[str, Any], error: str | None, space: SearchSpace, budget_spent: bool
) -> tuple[str, str, float]:
    """Status, reason and wall time (unknown) of a trial the search stopped before it ended."""
    if error is not None:
        return (*trial_outcome(metrics, error, space.budget.max_epochs), math.nan)
    if int(metrics.get("epoch", 0)) >= space.budget.max_epochs:  # it ended as the search did
        return FINISHED, "", math.nan
    if budget_spent:
        return STOPPED_EARLY, "the search's trial-epoch budget was spent", math.nan
    return INTERRUPTED, "the search stopped before this trial ended", math.nan


def best_checkpoint(result: Any, metric: str) -> str | None:
    """The path of the trial's kept checkpoint with the best `metric` (the earliest on a tie),
    chosen as Tune's checkpoint scoring chose it: on validation, never on the test set."""
    sign = 1.0 if METRICS[metric] == "max" else -1.0
    scored = [
        (sign * float(m[metric]), -int(m.get("epoch", 0)), c.path)
        for c, m in (getattr(result, "best_checkpoints", None) or [])
        if m.get(metric) is not None and math.isfinite(float(m[metric]))
    ]
    if scored:
        return max(scored)[2]
    return result.checkpoint.path if result.checkpoint else None
