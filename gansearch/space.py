"""The search-space file: what is searched, how, for how long, on what, and where results go.

A search space is YAML with these sections (search_spaces/digits.yaml is a complete example):

    name: digits-quick            # experiment name (default: the file's stem)
    dataset: {name: digits}       # as gansearch.data.load_dataset names it; fold for TFD
    trainer: {...}                # fixed trainer settings, the schema of configs/*.yaml
    params:                       # searched trainer settings, by dotted key
      optim.lr_d: {distribution: loguniform, low: 0.01, high: 0.5}
      optim.k: {distribution: int, low: 1, high: 5}
      generator.units: {distribution: int, low: 600, high: 1600, step: 200}  # every layer
      discriminator.keep_probs[0]: {distribution: uniform, low: 0.5, high: 1.0}  # one entry
      discriminator.units: {distribution: categorical, choices: [[240, 240], [480, 480]]}
    search: {algorithm: tpe, seed: 0, options: {}}          # Optuna sampler and its options
      # start_with: [{optim.lr_d: 0.1, optim.k: 1, ...}]      # configurations to try first
    scheduler: {type: asha, grace_period: 2, reduction_factor: 3}   # or median, pbt, none
    budget: {trials: 20, max_epochs: 10, trial_epochs: null, time_limit: null, concurrency: 2}
    resources: {cpus: 1, gpus: 0, max_failures: 2}
    objective: {metric: valid_ll, eval_every: 1, samples: 2000, n_valid: 1000, quality: false}
    results: {dir: runs}
    chaos: {crash_at_epoch: null, kill_at_epoch: null, diverge_at_epoch: null, trials: null}

`objective.metric` is one metric or a list: `[valid_ll, fid]` makes the search multi-objective
(NSGA-II unless `search.algorithm` names another multi-objective sampler), and its result is a
Pareto front; the first metric is the primary one, which early stopping uses. Metrics: valid_ll
(maximised), fid, class_kl (minimised), classes_covered, confidence (maximised); the last four
come from gansearch.quality's classifier, computed on the same samples as valid_ll at every
evaluation epoch (also logged, without being objectives, with `quality: true`).

`search.start_with` lists configurations to try first, each a mapping of searched keys to values
(a key left out is drawn as usual): the first trials of an Optuna search (its enqueued trials),
the first members of a pbt population. Each value must lie in its parameter's distribution,
and there may be no more of them than `budget.trials`.

`scheduler.type: pbt` is population-based training: `budget.trials` random configurations (so
`search.algorithm: random`) trained side by side, and every `perturbation_interval` epochs after
`grace_period` the bottom `quantile_fraction` copy a top trial's state and perturb the searched
parameters listed in `mutate`, which must be settings the trainer can change mid-run
(train_config.MUTABLE_SETTINGS: learning rates, k, momentum, dropout; never widths or pieces).
`budget.trial_epochs` ends the search once all trials together have trained that many epochs.

`chaos` is a testing aid, not a search setting: with it, every trial's first attempt raises
(`crash_at_epoch`) or kills its worker process (`kill_at_epoch`) at the start of that epoch, to
see retries from checkpoints work (`resources.max_failures`), or reports a divergence there
(`diverge_at_epoch`, once per trial), to see pbt replace a diverged member; `trials` limits it
to the trials of those indices (0 is the first trial). Leave it out of real searches.

`load_space` validates all of it before anything starts; every error names the file, the key
path and the reason. A scalar searched for a list setting (layer widths, keep-probabilities) sets
every entry; `key[i]` sets entry i; whole-list parameters apply before indexed ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna

from gansearch.data import DATASETS, LABELLED_DATASETS
from gansearch.errors import ConfigError
from gansearch.experiment import NAME_PATTERN, NAME_RULE
from gansearch.objectives import METRICS, PARZEN_METRIC, QUALITY_METRICS
from gansearch.schema import build, check, fail, read_yaml, setting
from gansearch.train_config import (
    MUTABLE_SETTINGS,
    DataConfig,
    TrainConfig,
    config_from_dict,
    config_keys,
    config_to_dict,
)

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
        return _apply(self.trainer, self.params, values, f"{self.source} (trial values)")

    def with_budget(self, **changes: Any) -> SearchSpace:
        """A copy with budget fields replaced (command-line overrides), re-checked."""
        budget = dataclasses.replace(self.budget, **changes)
        _check_budget(budget, self.scheduler, self.objective, self.source)
        trainer = dataclasses.replace(self.trainer, epochs=budget.max_epochs)
        return dataclasses.replace(self, budget=budget, trainer=trainer)


def _apply(
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


def _check(ok: bool, source: str, key: str, message: str) -> None:
    if not ok:
        fail(source, key, message)


def _section(cls: type, raw: Mapping[str, Any], key: str, source: str) -> Any:
    value = raw.get(key)
    return cls() if value is None else build(cls, value, key, source)


def _check_budget(budget: Budget, scheduler: Scheduler, objective: Objective, source: str):
    """The budget's own bounds, and what it must allow the scheduler and the objective."""
    check(budget, "budget", source)
    _check(
        scheduler.type == "none" or scheduler.grace_period <= budget.max_epochs,
        source,
        "scheduler.grace_period",
        f"{scheduler.grace_period} epochs is longer than budget.max_epochs ({budget.max_epochs})",
    )
    _check(
        objective.eval_every <= budget.max_epochs,
        source,
        "objective.eval_every",
        f"{objective.eval_every} is more than budget.max_epochs ({budget.max_epochs}): "
        "no trial would ever be evaluated",
    )


def _check_sections(space: dict[str, Any], source: str) -> None:
    """Rules across the sections (each field's choices and bounds were checked when built)."""
    search, scheduler, resources, objective = (
        space["search"],
        space["scheduler"],
        space["resources"],
        space["objective"],
    )
    _check(
        not (objective.multi and search.algorithm in SINGLE_OBJECTIVE_ONLY),
        source,
        "search.algorithm",
        f"{search.algorithm} cannot search several objectives ({', '.join(objective.metrics)}); "
        "use nsgaii (the default for several), tpe, random, qmc or gp",
    )
    try:
        make_sampler(search)
    except TypeError as exc:
        fail(
            source,
            "search.options",
            f"not accepted by Optuna's {SAMPLERS[search.algorithm]}: {exc}",
        )
    if scheduler.type == "pbt":
        _check_pbt_sections(scheduler, search, objective, source)
    _check_budget(space["budget"], scheduler, objective, source)
    _check(
        resources.gpus >= 0 and (resources.gpus <= 1 or float(resources.gpus).is_integer()),
        source,
        "resources.gpus",
        f"must be a fraction in [0, 1] or a whole number, got {resources.gpus}",
    )
    _check_objective(objective, source)


def _check_pbt_sections(
    scheduler: Scheduler, search: SearchAlgorithm, objective: Objective, source: str
) -> None:
    """Population-based training: what Ray Tune's scheduler needs from the other sections."""
    _check(
        search.algorithm == "random",
        source,
        "search.algorithm",
        f"pbt starts its population from random samples and Ray Tune runs it without a search "
        f"algorithm: set search.algorithm: random (got {search.algorithm!r})",
    )
    _check(
        not objective.multi,
        source,
        "objective.metric",
        "pbt ranks trials on one objective; name a single metric",
    )
    _check(
        scheduler.perturbation_interval % objective.eval_every == 0,
        source,
        "scheduler.perturbation_interval",
        f"{scheduler.perturbation_interval} epochs is not a multiple of objective.eval_every "
        f"({objective.eval_every}): trials report, and can be perturbed, only at evaluations",
    )
    _check(
        bool(scheduler.mutate),
        source,
        "scheduler.mutate",
        "pbt needs the searched parameters it may change mid-run, e.g. [optim.lr_d, optim.lr_g]",
    )


def _check_mutations(scheduler: Scheduler, params: tuple[Param, ...], source: str) -> None:
    """Only searched parameters the trainer can change between epochs may be mutated."""
    searched = {p.key: p for p in params}
    for i, key in enumerate(scheduler.mutate):
        where = f"scheduler.mutate[{i}]"
        param = searched.get(key)
        _check(
            param is not None,
            source,
            where,
            f"{key} is not a searched parameter: give it a range under params first",
        )
        _check(
            param.base in MUTABLE_SETTINGS,
            source,
            where,
            f"{key} cannot change within a trial: it fixes the networks' shapes, and a copied "
            f"checkpoint must keep them (mutable: {', '.join(MUTABLE_SETTINGS)})",
        )
    _check(
        len(set(scheduler.mutate)) == len(scheduler.mutate),
        source,
        "scheduler.mutate",
        f"names a parameter twice: {list(scheduler.mutate)}",
    )


def _check_objective(objective: Objective, source: str) -> None:
    metrics = objective.metrics
    _check(bool(metrics), source, "objective.metric", "name at least one metric")
    for i, metric in enumerate(metrics):
        key = "objective.metric" if isinstance(objective.metric, str) else f"objective.metric[{i}]"
        _check(
            metric in METRICS,
            source,
            key,
            f"unknown metric {metric!r}; choose from {', '.join(METRICS)}",
        )
    _check(
        len(set(metrics)) == len(metrics),
        source,
        "objective.metric",
        f"names a metric twice: {list(metrics)}",
    )
    if objective.mode is None:
        return
    modes = (objective.mode,) if isinstance(objective.mode, str) else tuple(objective.mode)
    _check(
        len(modes) == len(metrics),
        source,
        "objective.mode",
        f"gives {len(modes)} modes for {len(metrics)} metrics (or leave it out: each metric "
        "has its own direction)",
    )
    for metric, mode, natural in zip(metrics, modes, objective.modes, strict=True):
        _check(
            mode == natural,
            source,
            "objective.mode",
            f"{metric} is {'maximised' if natural == 'max' else 'minimised'} ({natural!r}), "
            f"got {mode!r}",
        )


def _parse_param(key: Any, spec: Any, valid_keys: set[str], list_keys: set[str], source: str):
    where = f"params.{key}"
    match = _KEY.match(str(key))
    if not isinstance(key, str) or not match:
        fail(source, where, "must be a dotted trainer key such as optim.lr_d or units[0]")
    base = match["base"]
    if base not in valid_keys:
        fail(source, where, "the trainer has no such setting (see configs/mnist_paper.yaml)")
    for owned, owner in OWNED.items():
        if base == owned or base.startswith(owned + "."):
            fail(source, where, f"set by {owner}, not searched as a trainer setting")
    if match["index"] is not None and base not in list_keys:
        fail(source, where, f"{base} is not a list, so it takes no [index]")
    if not isinstance(spec, Mapping):
        fail(source, where, f"must be a mapping with a distribution, got {spec!r}")
    param = build(Param, {"key": key, **spec}, where, source)
    kind = param.distribution
    if kind == "categorical":
        for extra in ("low", "high", "step"):
            _check(
                getattr(param, extra) is None, source, f"{where}.{extra}", "not used by categorical"
            )
        _check(
            bool(param.choices),
            source,
            f"{where}.choices",
            "a categorical needs at least one choice",
        )
        return param
    _check(param.choices is None, source, f"{where}.choices", f"only for categorical, not {kind}")
    for bound in ("low", "high"):
        value = getattr(param, bound)
        _check(value is not None, source, f"{where}.{bound}", f"required for {kind}")
        _check(math.isfinite(value), source, f"{where}.{bound}", f"must be finite, got {value}")
        if kind == "int":
            _check(
                float(value).is_integer(),
                source,
                f"{where}.{bound}",
                f"must be an integer, got {value}",
            )
    low, high = param.low, param.high
    _check(
        low < high,
        source,
        where,
        f"empty or inverted range: low {low} must be below high {high}",
    )
    if kind == "loguniform" or param.log:
        _check(low > 0, source, f"{where}.low", f"a log range must stay above 0, got {low}")
        _check(param.step is None, source, f"{where}.step", "Optuna takes no step on a log scale")
    if param.step is not None:
        _check(param.step > 0, source, f"{where}.step", f"must be > 0, got {param.step}")
        _check(
            param.step <= high - low,
            source,
            f"{where}.step",
            f"{param.step} is wider than the range {low}..{high}",
        )
        if kind == "int":
            _check(float(param.step).is_integer(), source, f"{where}.step", "must be an integer")
    _check(not param.log or kind == "int", source, f"{where}.log", "only for int (use loguniform)")
    return param


def load_space(path: str | Path) -> SearchSpace:
    """Read and fully validate a search-space file; raise ConfigError naming file and key."""
    source = str(path)
    raw = read_yaml(path)
    if not isinstance(raw, Mapping):
        fail(source, "", f"top level must be a mapping of sections, got {raw!r}")
    sections = {
        "search": SearchAlgorithm,
        "scheduler": Scheduler,
        "budget": Budget,
        "resources": Resources,
        "objective": Objective,
        "results": Results,
        "chaos": Chaos,
    }
    known = {"name", "dataset", "trainer", "params", *sections}
    for key in raw:
        if key not in known:
            fail(source, str(key), f"unknown section (valid: {', '.join(sorted(known))})")
    name = raw.get("name", Path(source).stem)
    _check(
        isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) is not None,
        source,
        "name",
        f"must be a name of {NAME_RULE}, got {name!r}",
    )
    parsed = {key: _section(cls, raw, key, source) for key, cls in sections.items()}
    if parsed["search"].algorithm is None:
        default = "nsgaii" if parsed["objective"].multi else "tpe"
        parsed["search"] = dataclasses.replace(parsed["search"], algorithm=default)
    _check_sections(parsed, source)

    if "dataset" not in raw:
        fail(source, "dataset", f"required: the data set to search on ({', '.join(DATASETS)})")
    dataset = build(DataConfig, raw["dataset"], "dataset", source)
    _check(
        dataset.name in DATASETS,
        source,
        "dataset.name",
        f"unknown data set {dataset.name!r}; choose one of {', '.join(DATASETS)}",
    )
    objective = parsed["objective"]
    _check(
        not objective.needs_quality or dataset.name in LABELLED_DATASETS,
        source,
        "objective",
        f"FID, coverage and confidence need a classifier trained on labelled data "
        f"({', '.join(LABELLED_DATASETS)}); {dataset.name} has no class labels",
    )
    trainer_raw = raw.get("trainer") or {}
    if not isinstance(trainer_raw, Mapping):
        fail(source, "trainer", f"must be a mapping of trainer settings, got {trainer_raw!r}")
    for owned, owner in OWNED.items():
        section, _, leaf = owned.partition(".")
        present = section in trainer_raw and (
            not leaf or (isinstance(trainer_raw[section], Mapping) and leaf in trainer_raw[section])
        )
        if present:
            fail(source, f"trainer.{owned}", f"set by {owner} in a search space")
    objective, budget = parsed["objective"], parsed["budget"]
    merged = {key: value for key, value in trainer_raw.items()}
    merged["eval"] = {
        **(trainer_raw.get("eval") or {}),
        "every": objective.eval_every,
        "samples": objective.samples,
        "n_valid": objective.n_valid,
    }
    merged["data"] = dataclasses.asdict(dataset)
    merged["epochs"] = budget.max_epochs
    try:
        trainer = config_from_dict(merged, f"{source}: trainer")
    except ConfigError as exc:
        raise ConfigError(
            str(exc).replace(f"{source}: trainer: ", f"{source}: trainer.", 1)
        ) from None

    params_raw = raw.get("params")
    if not isinstance(params_raw, Mapping) or not params_raw:
        fail(source, "params", "required: a mapping of trainer keys to distributions")
    valid_keys = set(config_keys())
    defaults = config_to_dict(trainer)
    list_keys = {k for k in valid_keys if isinstance(_lookup(defaults, k), list)}
    params = tuple(
        _parse_param(key, spec, valid_keys, list_keys, source) for key, spec in params_raw.items()
    )
    for param in params:  # every bound and choice must be a setting the trainer accepts
        for value in param.extremes():
            try:
                _apply(trainer, params, {param.key: optuna_value(value)}, source)
            except ConfigError as exc:
                reason = str(exc).split(": ", 2)[-1]
                fail(source, f"params.{param.key}", f"value {value!r} is impossible: {reason}")
    if parsed["scheduler"].type == "pbt":
        _check_mutations(parsed["scheduler"], params, source)
    points = _start_points(parsed["search"], params, trainer, parsed["budget"], source)
    parsed["search"] = dataclasses.replace(parsed["search"], start_with=points)
    return SearchSpace(source=source, name=name, trainer=trainer, params=params, **parsed)


def _start_points(
    search: SearchAlgorithm,
    params: tuple[Param, ...],
    trainer: TrainConfig,
    budget: Budget,
    source: str,
) -> tuple[dict, ...]:
    """`search.start_with`, each value checked against its parameter and each configuration
    against the trainer; returned with Optuna's encoding of the values."""
    given = search.start_with
    _check(
        len(given) <= budget.trials,
        source,
        "search.start_with",
        f"lists {len(given)} configurations but budget.trials is {budget.trials}: "
        "every one of them is a trial",
    )
    searched = {p.key: p for p in params}
    points = []
    for i, entry in enumerate(given):
        where = f"search.start_with[{i}]"
        _check(bool(entry), source, where, "an empty configuration: give searched keys and values")
        point = {}
        for key, value in entry.items():
            param = searched.get(key)
            _check(
                param is not None,
                source,
                f"{where}.{key}",
                f"not a searched parameter (searched: {', '.join(searched)})",
            )
            point[key] = _start_value(param, value, source, f"{where}.{key}")
        try:
            _apply(trainer, params, point, source)
        except ConfigError as exc:
            fail(source, where, f"the trainer refuses it: {str(exc).split(': ', 2)[-1]}")
        points.append(point)
    return tuple(points)


def _start_value(param: Param, value: Any, source: str, where: str) -> Any:
    """One value of a start_with configuration, as Optuna stores it, if `param` could draw it."""
    if param.distribution == "categorical":
        choices = [optuna_value(c) for c in param.choices or ()]
        encoded = optuna_value(value)
        _check(
            encoded in choices,
            source,
            where,
            f"{value!r} is not one of the choices {list(param.choices or ())}",
        )
        return encoded
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if param.distribution == "int":
        _check(
            number and isinstance(value, int), source, where, f"must be an integer, got {value!r}"
        )
    else:
        _check(number, source, where, f"must be a number, got {value!r}")
        _check(math.isfinite(value), source, where, f"must be finite, got {value!r}")
        value = float(value)
    low, high = param.low, param.high
    _check(low <= value <= high, source, where, f"{value!r} is outside the range {low:g}..{high:g}")
    if param.step is not None:
        steps = (value - low) / param.step
        _check(
            math.isclose(steps, round(steps), abs_tol=1e-9),
            source,
            where,
            f"{value!r} is not on the grid {low:g}, {low + param.step:g}, ... "
            f"(step {param.step:g})",
        )
    return value


def _lookup(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def make_sampler(search: SearchAlgorithm) -> optuna.samplers.BaseSampler:
    """The Optuna sampler named by the search section, seeded."""
    cls = getattr(optuna.samplers, SAMPLERS[search.algorithm])
    return cls(seed=search.seed, **search.options)
