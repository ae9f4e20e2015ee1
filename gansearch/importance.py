"""Which hyperparameters mattered: Optuna's importance evaluators over a finished search.

A search's trials (results.parquet) are replayed into an in-memory Optuna study, with the
space's distributions, and Optuna's evaluators score each searched parameter: fANOVA (the
default; the share of the objective's variance each parameter explains, Hutter et al. 2014) and
PED-ANOVA (which parameters set the best trials apart, Watanabe et al. 2023). Only trials that
trained and measured the objective count: finished ones and those stopped early (their best
value, the number the search ranked them by); failed, diverged and never-started ones do not.
A multi-objective search gets importances per objective.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from gansearch.outcomes import FINISHED, INTERRUPTED, STOPPED_EARLY
from gansearch.space import optuna_value

if TYPE_CHECKING:
    from gansearch.space import SearchSpace

USABLE = (FINISHED, STOPPED_EARLY, INTERRUPTED)
EVALUATORS = ("fanova", "ped_anova")
TRUSTED_TRIALS = 30  # below this, importances are a hint; above it fANOVA's forest settles
TRUSTED_PER_PARAM = 5


@dataclass(frozen=True)
class Importances:
    """Importances of the searched parameters, long format, and what they rest on."""

    table: pd.DataFrame  # columns: objective, evaluator, param, importance
    n_trials: int
    n_params: int

    @property
    def warning(self) -> str:
        """Why these numbers should not be trusted far ("" if they rest on enough trials)."""
        enough = max(TRUSTED_TRIALS, TRUSTED_PER_PARAM * self.n_params)
        if self.n_trials >= enough:
            return ""
        return (
            f"only {self.n_trials} trials for {self.n_params} parameters: importances this "
            f"thin are a hint, not a finding (trust them from about {enough} trials)"
        )

    def note(self) -> str:
        """One paragraph for people: what the numbers rest on."""
        text = (
            f"Importances of the {self.n_params} searched parameters from {self.n_trials} trials "
            "that measured the objective (finished or stopped early; each trial's best value): "
            "fANOVA, the share of the objective's variance a parameter explains, and PED-ANOVA, "
            "how much a parameter sets the best 10% of trials apart (Optuna's evaluators; each "
            "column sums to 1)."
        )
        return f"{text} Warning: {self.warning}." if self.warning else text


def importances(results: pd.DataFrame, space: SearchSpace, seed: int = 0) -> Importances:
    """fANOVA and PED-ANOVA importances of every searched parameter for each objective."""
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.WARNING)  # the replayed study's creation says nothing to a user
    try:
        return _importances(results, space, seed)
    finally:
        logger.setLevel(level)


def _importances(results: pd.DataFrame, space: SearchSpace, seed: int) -> Importances:
    import optuna

    objective = space.objective
    distributions = space.optuna_space()
    usable = results[results["status"].isin(USABLE)]
    rows: list[dict[str, Any]] = []
    counted = 0
    for metric, mode in zip(objective.metrics, objective.modes, strict=True):
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
        for trial in usable.to_dict("records"):
            value = trial.get(metric)
            if value is None or not math.isfinite(float(value)):
                continue
            params = {p.key: _optuna_value(trial.get(p.key)) for p in space.params}
            if any(v is None for v in params.values()):
                continue
            study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions=distributions, value=float(value)
                )
            )
        counted = max(counted, len(study.trials))
        if len(study.trials) < 2:
            continue
        evaluators = {
            "fanova": optuna.importance.FanovaImportanceEvaluator(seed=seed),
            "ped_anova": optuna.importance.PedAnovaImportanceEvaluator(),
        }
        for name, evaluator in evaluators.items():
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
            for param, value in found.items():
                rows.append(
                    {"objective": metric, "evaluator": name, "param": param, "importance": value}
                )
    table = pd.DataFrame(rows, columns=["objective", "evaluator", "param", "importance"])
    return Importances(table=table, n_trials=counted, n_params=len(space.params))


def _optuna_value(value: Any) -> Any:
    """A results-table value (numpy from Parquet) as Optuna stores it; None when missing."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars to plain Python
        value = value.tolist()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return optuna_value(value)


def importance_markdown(result: Importances) -> str:
    """A table per objective: parameters by fANOVA importance, then PED-ANOVA's."""
    lines: list[str] = []
    for metric, group in result.table.groupby("objective", sort=False):
        wide = group.pivot(index="param", columns="evaluator", values="importance")
        wide = wide.reindex(columns=[e for e in EVALUATORS if e in wide.columns])
        wide = wide.sort_values(wide.columns[0], ascending=False)
        lines += [f"### {metric}", "", "| Parameter | " + " | ".join(wide.columns) + " |"]
        lines.append("|---|" + "---|" * len(wide.columns))
        for param, values in wide.iterrows():
            cells = " | ".join(f"{v:.3f}" for v in values)
            lines.append(f"| {param} | {cells} |")
        lines.append("")
    lines.append(result.note())
    return "\n".join(lines) + "\n"
