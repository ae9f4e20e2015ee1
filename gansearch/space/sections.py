"""The sections of a search-space file as frozen dataclasses (what each key may hold) and the
SearchSpace that gathers them; gansearch.space.rules checks what spans sections."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna

from gansearch.objectives import METRICS, PARZEN_METRIC, QUALITY_METRICS
from gansearch.schema import check, fail, setting
from gansearch.train_config import TrainConfig, config_from_dict, config_to_dict

Distribution = Literal["loguniform", "uniform", "int", "categorical"]

SamplerName = Literal["tpe", "random", "cmaes", "qmc", "gp", "nsgaii"]

SchedulerType = Literal["asha", "median", "pbt", "none"]

SAMPLERS: dict[SamplerName, str] = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
    "nsgaii": "NSGAIISampler",
}

SINGLE_OBJECTIVE_ONLY = ("cmaes",)  # Optuna samplers that cannot search several objectives

# Trainer settings that other sections own: searching or fixing them in `trainer` is an error.
OWNED = {
    "data": "dataset",
    "epochs": "budget.max_epochs",
    "eval.every": "objective.eval_every",
    "eval.samples": "objective.samples",
    "eval.n_valid": "objective.n_valid",
}

_KEY = re.compile(r"^(?P<base>[a-z_][a-z0-9_.]*?)(?:\[(?P<index>\d+)\])?$")


@dataclass(frozen=True)
class Param:
    """One searched trainer setting and its distribution."""

    key: str
    distribution: Distribution = setting(noun="distribution")
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def base(self) -> str:
        """The trainer key without an index: `discriminator.keep_probs` for `...[0]`."""
        return self.key.split("[", 1)[0]

    @property
    def index(self) -> int | None:
        """The list entry this parameter sets, or None for the whole setting."""
        match = _KEY.match(self.key)
        return int(match["index"]) if match and match["index"] is not None else None

    def optuna_distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution (list-valued choices travel as JSON strings)."""
        if self.distribution == "categorical":
            return optuna.distributions.CategoricalDistribution(
                [optuna_value(choice) for choice in self.choices or ()]
            )
        if self.distribution == "int":
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.distribution == "loguniform", step=self.step
        )

    def decode(self, value: Any) -> Any:
        """The trainer value for an Optuna value (undoes the JSON of list-valued choices)."""
        if self.distribution == "categorical" and isinstance(value, str) and value[:1] == "[":
            return json.loads(value)
        return value

    def extremes(self) -> list[Any]:
        """The values that bound this parameter's domain, to check against the trainer."""
        if self.distribution == "categorical":
            return list(self.choices or ())
        if self.distribution == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def optuna_value(choice: Any) -> Any:
    """A parameter value as Optuna stores it: list-valued choices as JSON text."""
    return json.dumps(choice) if isinstance(choice, (list, tuple, dict)) else choice


@dataclass(frozen=True)
class SearchAlgorithm:
    """Which Optuna sampler proposes configurations."""

    # Default: tpe, or nsgaii for several objectives.
    algorithm: SamplerName | None = setting(None, noun="algorithm")
    seed: int | None = 0
    options: dict = field(default_factory=dict)
    # Configurations to try first (searched key -> value), checked against the space by
    # load_space and stored as Optuna records them (list-valued choices as JSON text).
    start_with: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Scheduler:
    """Early stopping (ASHA, the default, or the median stopping rule), population-based
    training (pbt), or none. Times in epochs."""

    type: SchedulerType = setting("asha", noun="scheduler")
    # Epochs before a trial can be stopped (pbt: copied or perturbed).
    grace_period: int = setting(1, ge=1)
    reduction_factor: float = setting(3.0, gt=1)
    # pbt: every perturbation_interval epochs a trial in the bottom quantile_fraction copies the
    # state of one in the top quantile_fraction and perturbs the parameters named in `mutate`
    # (each resampled with resample_probability, else scaled by 0.8 or 1.2 within its range).
    perturbation_interval: int = setting(4, ge=1)
    mutate: tuple[str, ...] = ()
    quantile_fraction: float = setting(0.25, gt=0, le=0.5)
    resample_probability: float = setting(0.25, ge=0, le=1)


@dataclass(frozen=True)
class Budget:
    """How many trials, how long each may train, and how many run at once."""

    trials: int = setting(20, ge=1)
    max_epochs: int = setting(10, ge=1)
    # Epochs over all trials together; the search ends there.
    trial_epochs: int | None = setting(None, ge=1, null="no limit")
    time_limit: float | None = setting(None, gt=0, null="no limit")  # seconds, whole search
    concurrency: int = setting(1, ge=1)


@dataclass(frozen=True)
class Resources:
    """What each trial asks of the cluster, and how often a crashed trial is retried."""

    cpus: float = setting(1.0, gt=0)
    gpus: float = 0.0  # a fraction such as 0.25 packs four trials on one GPU
    max_failures: int = setting(2, ge=0)


@dataclass(frozen=True)
class Objective:
    """The objective(s) and the (cheaper than Table 1) evaluation settings used inside trials."""

    metric: str | tuple[str, ...] = PARZEN_METRIC  # a list: multi-objective, first is primary
    mode: str | tuple[str, ...] | None = None  # each metric's own direction; checked if given
    eval_every: int = setting(1, ge=1)
    # Samples per evaluation, for Parzen and the quality metrics alike.
    samples: int = setting(2000, ge=1)
    n_valid: int | None = setting(1000, ge=1, null="all")
    quality: bool = False  # also log FID, coverage and confidence at every evaluation

    @property
    def metrics(self) -> tuple[str, ...]:
        """The objective metrics, primary first."""
        return (self.metric,) if isinstance(self.metric, str) else tuple(self.metric)

    @property
    def modes(self) -> tuple[str, ...]:
        """'max' or 'min' for each objective metric."""
        return tuple(METRICS.get(m, "max") for m in self.metrics)

    @property
    def primary(self) -> str:
        """The metric that early stopping and single-objective ranking use."""
        return self.metrics[0]

    @property
    def multi(self) -> bool:
        """Several objectives: a Pareto front instead of one best trial."""
        return len(self.metrics) > 1

    @property
    def needs_quality(self) -> bool:
        """Whether trials must score their samples with the quality classifier."""
        return self.quality or any(m in QUALITY_METRICS for m in self.metrics)


@dataclass(frozen=True)
class Results:
    """Where experiments are written (relative paths are relative to the working directory)."""

    dir: str = "runs"


@dataclass(frozen=True)
class Chaos:
    """Fault injection, to see retries and replacements work: on its first attempt every trial
    (or those listed in `trials`, by index) crashes (raises), is killed (its worker process
    exits) or diverges at the start of the given epoch."""

    crash_at_epoch: int | None = setting(None, ge=1)
    kill_at_epoch: int | None = setting(None, ge=1)
    diverge_at_epoch: int | None = setting(None, ge=1)
    trials: tuple[int, ...] | None = setting(None, ge=0)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search-space file."""

    source: str
    name: str
    trainer: TrainConfig
    params: tuple[Param, ...]
    search: SearchAlgorithm = field(default_factory=SearchAlgorithm)
    scheduler: Scheduler = field(default_factory=Scheduler)
    budget: Budget = field(default_factory=Budget)
    resources: Resources = field(default_factory=Resources)
    objective: Objective = field(default_factory=Objective)
    results: Results = field(default_factory=Results)
    chaos: Chaos = field(default_factory=Chaos)

    def optuna_space(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions keyed by parameter key (the names Optuna and Tune record)."""
        return {p.key: p.optuna_distribution() for p in self.params}

    def trial_config(self, values: Mapping[str, Any]) -> TrainConfig:
        """The trainer configuration of one trial: the fixed settings plus the sampled values."""
        return apply_values(self.trainer, self.params, values, f"{self.source} (trial values)")

    def with_budget(self, **changes: Any) -> SearchSpace:
        """A copy with budget fields replaced (command-line overrides), re-checked."""
        budget = dataclasses.replace(self.budget, **changes)
        check_budget(budget, self.scheduler, self.objective, self.source)
        trainer = dataclasses.replace(self.trainer, epochs=budget.max_epochs)
        return dataclasses.replace(self, budget=budget, trainer=trainer)


def apply_values(
    trainer: TrainConfig, params: tuple[Param, ...], values: Mapping[str, Any], source: str
) -> TrainConfig:
    raw = config_to_dict(trainer)
    ordered = [p for p in params if p.index is None] + [p for p in params if p.index is not None]
    for param in ordered:
        if param.key not in values:
            continue
        value = param.decode(values[param.key])
        *parents, leaf = param.base.split(".")
        node = raw
        for part in parents:
            node = node[part]
        current = node[leaf]
        if param.index is not None:
            current = list(current)
            if param.index >= len(current):
                fail(source, param.key, f"index {param.index} is past the list's end {current}")
            current[param.index] = value
            node[leaf] = current
        elif isinstance(current, list) and not isinstance(value, (list, tuple)):
            node[leaf] = [value] * len(current)  # a scalar sets every layer
        else:
            node[leaf] = list(value) if isinstance(value, tuple) else value
    return config_from_dict(raw, source)


def check_rule(ok: bool, source: str, key: str, message: str) -> None:
    if not ok:
        fail(source, key, message)


def check_budget(budget: Budget, scheduler: Scheduler, objective: Objective, source: str):
    """The budget's own bounds, and what it must allow the scheduler and the objective."""
    check(budget, "budget", source)
    check_rule(
        scheduler.type == "none" or scheduler.grace_period <= budget.max_epochs,
        source,
        "scheduler.grace_period",
        f"{scheduler.grace_period} epochs is longer than budget.max_epochs ({budget.max_epochs})",
    )
    check_rule(
        objective.eval_every <= budget.max_epochs,
        source,
        "objective.eval_every",
        f"{objective.eval_every} is more than budget.max_epochs ({budget.max_epochs}): "
        "no trial would ever be evaluated",
    )
