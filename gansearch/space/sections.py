"""The sections of a search-space file as frozen dataclasses (what each key may hold) and the
SearchSpace that gathers them; gansearch.space.rules checks what spans sections."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import optuna
from pydantic import Field

from gansearch.experiment import NAME_PATTERN, NAME_RULE
from gansearch.objectives import METRICS, PARZEN_METRIC, QUALITY_METRICS
from gansearch.schema import Bool, Float, Int, Says, Str, fail, json_schema, replace, settings
from gansearch.train_config import DataConfig, TrainConfig, config_from_dict, config_to_dict

DistributionName = Literal["loguniform", "uniform", "int", "categorical"]

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


@settings
class Distribution:
    """How one searched setting is drawn: an entry of the space file's `params`."""

    distribution: Annotated[DistributionName, Says(noun="distribution")]
    low: Float | None = None
    high: Float | None = None
    step: Float | None = None
    log: Bool = False
    choices: tuple[Any, ...] | None = None


@settings
class Param(Distribution):
    """One searched trainer setting (its dotted key, `units[0]` for one entry) and its
    distribution."""

    key: Str = Field(kw_only=True)

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


@settings
class SearchAlgorithm:
    """Which Optuna sampler proposes configurations."""

    algorithm: Annotated[SamplerName | None, Says(noun="algorithm")] = None
    """Default: tpe, or nsgaii for several objectives."""
    seed: Int | None = 0
    options: dict[str, Any] = field(default_factory=dict)
    start_with: tuple[dict[str, Any], ...] = ()
    """Configurations to try first (searched key -> value), checked against the space by
    load_space and stored as Optuna records them (list-valued choices as JSON text)."""


@settings
class Scheduler:
    """Early stopping (ASHA, the default, or the median stopping rule), population-based
    training (pbt), or none. Times in epochs."""

    type: Annotated[SchedulerType, Says(noun="scheduler")] = "asha"
    grace_period: Int = Field(1, ge=1)
    """Epochs before a trial can be stopped (pbt: copied or perturbed)."""
    reduction_factor: Float = Field(3.0, gt=1)
    perturbation_interval: Int = Field(4, ge=1)
    """pbt: every perturbation_interval epochs a trial in the bottom quantile_fraction copies
    the state of one in the top quantile_fraction and perturbs the parameters named in `mutate`
    (each resampled with resample_probability, else scaled by 0.8 or 1.2 within its range)."""
    mutate: tuple[Str, ...] = ()
    quantile_fraction: Float = Field(0.25, gt=0, le=0.5)
    resample_probability: Float = Field(0.25, ge=0, le=1)


@settings
class Budget:
    """How many trials, how long each may train, and how many run at once."""

    trials: Int = Field(20, ge=1)
    max_epochs: Int = Field(10, ge=1)
    trial_epochs: Annotated[Int | None, Says(null="no limit")] = Field(None, ge=1)
    """Epochs over all trials together; the search ends there."""
    time_limit: Annotated[Float | None, Says(null="no limit")] = Field(None, gt=0)
    """Seconds, whole search."""
    concurrency: Int = Field(1, ge=1)


@settings
class Resources:
    """What each trial asks of the cluster, and how often a crashed trial is retried."""

    cpus: Float = Field(1.0, gt=0)
    gpus: Float = 0.0
    """A fraction such as 0.25 packs four trials on one GPU."""
    max_failures: Int = Field(2, ge=0)


@settings
class Objective:
    """The objective(s) and the (cheaper than Table 1) evaluation settings used inside trials."""

    metric: Str | tuple[Str, ...] = PARZEN_METRIC
    """A list: multi-objective, first is primary."""
    mode: Str | tuple[Str, ...] | None = None
    """Each metric's own direction; checked if given."""
    eval_every: Int = Field(1, ge=1)
    samples: Int = Field(2000, ge=1)
    """Samples per evaluation, for Parzen and the quality metrics alike."""
    n_valid: Annotated[Int | None, Says(null="all")] = Field(1000, ge=1)
    quality: Bool = False
    """Also log FID, coverage and confidence at every evaluation."""

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


@settings
class Results:
    """Where experiments are written (relative paths are relative to the working directory)."""

    dir: Str = "runs"


@settings
class Chaos:
    """Fault injection, to see retries and replacements work: on its first attempt every trial
    (or those listed in `trials`, by index) crashes (raises), is killed (its worker process
    exits) or diverges at the start of the given epoch."""

    crash_at_epoch: Int | None = Field(None, ge=1)
    kill_at_epoch: Int | None = Field(None, ge=1)
    diverge_at_epoch: Int | None = Field(None, ge=1)
    trials: tuple[Annotated[Int, Field(ge=0)], ...] | None = None


@settings
class SpaceFile:
    """A search-space file as written, each section checked on its own; what spans sections
    is gansearch.space.rules' job, and the SearchSpace is what comes out."""

    name: Str | None = Field(
        None, pattern=f"^(?:{NAME_PATTERN})$", description=f"a name of {NAME_RULE}"
    )
    """The experiment's name (default: the file's stem)."""
    dataset: DataConfig = Field(kw_only=True)
    """The data set to search on (and, for TFD, its fold)."""
    params: dict[Str, Distribution] = Field(kw_only=True)
    """The searched trainer settings, by dotted key (`units[0]` for one entry of a list)."""
    trainer: TrainConfig = field(default_factory=TrainConfig)
    """Fixed trainer settings: the schema of a training configuration, less what other
    sections own (data, epochs, eval.every, eval.samples, eval.n_valid)."""
    search: SearchAlgorithm = field(default_factory=SearchAlgorithm)
    scheduler: Scheduler = field(default_factory=Scheduler)
    budget: Budget = field(default_factory=Budget)
    resources: Resources = field(default_factory=Resources)
    objective: Objective = field(default_factory=Objective)
    results: Results = field(default_factory=Results)
    chaos: Chaos = field(default_factory=Chaos)


def space_schema() -> dict[str, Any]:
    """The JSON Schema of a search-space file (each field's type, choices and bounds). Its
    `trainer` is a training configuration less the settings other sections own (OWNED)."""
    schema = json_schema(SpaceFile, "gansearch search space")
    defs = schema["$defs"]
    trainer = copy.deepcopy(defs["TrainConfig"])
    for owned in OWNED:
        part, _, leaf = owned.partition(".")
        if not leaf:
            del trainer["properties"][part]
            continue
        section = copy.deepcopy(defs[trainer["properties"][part]["$ref"].rsplit("/", 1)[-1]])
        del section["properties"][leaf]
        name = section["title"] = "Space" + section["title"].removeprefix("Space")
        defs[name] = section
        trainer["properties"][part] = {"$ref": f"#/$defs/{name}"}
    trainer["title"] = "SpaceTrainConfig"
    defs["SpaceTrainConfig"] = trainer
    schema["properties"]["trainer"]["$ref"] = "#/$defs/SpaceTrainConfig"
    del defs["TrainConfig"], defs["EvalConfig"]  # referenced only by the trainer replaced above
    return schema


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
        budget = replace(self.budget, "budget", self.source, **changes)
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
    """What the budget must allow the scheduler and the objective."""
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
