"""The rules of a search-space file that a field's type and bounds cannot say: what spans
sections (sampler and objectives, pbt's needs, budget against scheduler), each searched
parameter's key and range, and the configurations to try first."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

import optuna

from gansearch.errors import ConfigError
from gansearch.objectives import METRICS
from gansearch.schema import build, fail
from gansearch.space.sections import (
    _KEY,
    OWNED,
    SAMPLERS,
    SINGLE_OBJECTIVE_ONLY,
    Budget,
    Objective,
    Param,
    Scheduler,
    SearchAlgorithm,
    apply_values,
    check_budget,
    check_rule,
    optuna_value,
)
from gansearch.train_config import MUTABLE_SETTINGS, TrainConfig


def check_sections(space: dict[str, Any], source: str) -> None:
    """Rules across the sections (each field's choices and bounds were checked when built)."""
    search, scheduler, resources, objective = (
        space["search"],
        space["scheduler"],
        space["resources"],
        space["objective"],
    )
    check_rule(
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
    check_budget(space["budget"], scheduler, objective, source)
    check_rule(
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
    check_rule(
        search.algorithm == "random",
        source,
        "search.algorithm",
        f"pbt starts its population from random samples and Ray Tune runs it without a search "
        f"algorithm: set search.algorithm: random (got {search.algorithm!r})",
    )
    check_rule(
        not objective.multi,
        source,
        "objective.metric",
        "pbt ranks trials on one objective; name a single metric",
    )
    check_rule(
        scheduler.perturbation_interval % objective.eval_every == 0,
        source,
        "scheduler.perturbation_interval",
        f"{scheduler.perturbation_interval} epochs is not a multiple of objective.eval_every "
        f"({objective.eval_every}): trials report, and can be perturbed, only at evaluations",
    )
    check_rule(
        bool(scheduler.mutate),
        source,
        "scheduler.mutate",
        "pbt needs the searched parameters it may change mid-run, e.g. [optim.lr_d, optim.lr_g]",
    )


def check_mutations(scheduler: Scheduler, params: tuple[Param, ...], source: str) -> None:
    """Only searched parameters the trainer can change between epochs may be mutated."""
    searched = {p.key: p for p in params}
    for i, key in enumerate(scheduler.mutate):
        where = f"scheduler.mutate[{i}]"
        param = searched.get(key)
        check_rule(
            param is not None,
            source,
            where,
            f"{key} is not a searched parameter: give it a range under params first",
        )
        check_rule(
            param.base in MUTABLE_SETTINGS,
            source,
            where,
            f"{key} cannot change within a trial: it fixes the networks' shapes, and a copied "
            f"checkpoint must keep them (mutable: {', '.join(MUTABLE_SETTINGS)})",
        )
    check_rule(
        len(set(scheduler.mutate)) == len(scheduler.mutate),
        source,
        "scheduler.mutate",
        f"names a parameter twice: {list(scheduler.mutate)}",
    )


def _check_objective(objective: Objective, source: str) -> None:
    metrics = objective.metrics
    check_rule(bool(metrics), source, "objective.metric", "name at least one metric")
    for i, metric in enumerate(metrics):
        key = "objective.metric" if isinstance(objective.metric, str) else f"objective.metric[{i}]"
        check_rule(
            metric in METRICS,
            source,
            key,
            f"unknown metric {metric!r}; choose from {', '.join(METRICS)}",
        )
    check_rule(
        len(set(metrics)) == len(metrics),
        source,
        "objective.metric",
        f"names a metric twice: {list(metrics)}",
    )
    if objective.mode is None:
        return
    modes = (objective.mode,) if isinstance(objective.mode, str) else tuple(objective.mode)
    check_rule(
        len(modes) == len(metrics),
        source,
        "objective.mode",
        f"gives {len(modes)} modes for {len(metrics)} metrics (or leave it out: each metric "
        "has its own direction)",
    )
    for metric, mode, natural in zip(metrics, modes, objective.modes, strict=True):
        check_rule(
            mode == natural,
            source,
            "objective.mode",
            f"{metric} is {'maximised' if natural == 'max' else 'minimised'} ({natural!r}), "
            f"got {mode!r}",
        )


def parse_param(key: Any, spec: Any, valid_keys: set[str], list_keys: set[str], source: str):
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
            check_rule(
                getattr(param, extra) is None, source, f"{where}.{extra}", "not used by categorical"
            )
        check_rule(
            bool(param.choices),
            source,
            f"{where}.choices",
            "a categorical needs at least one choice",
        )
        return param
    check_rule(
        param.choices is None, source, f"{where}.choices", f"only for categorical, not {kind}"
    )
    for bound in ("low", "high"):
        value = getattr(param, bound)
        check_rule(value is not None, source, f"{where}.{bound}", f"required for {kind}")
        check_rule(math.isfinite(value), source, f"{where}.{bound}", f"must be finite, got {value}")
        if kind == "int":
            check_rule(
                float(value).is_integer(),
                source,
                f"{where}.{bound}",
                f"must be an integer, got {value}",
            )
    low, high = param.low, param.high
    check_rule(
        low < high,
        source,
        where,
        f"empty or inverted range: low {low} must be below high {high}",
    )
    if kind == "loguniform" or param.log:
        check_rule(low > 0, source, f"{where}.low", f"a log range must stay above 0, got {low}")
        check_rule(
            param.step is None, source, f"{where}.step", "Optuna takes no step on a log scale"
        )
    if param.step is not None:
        check_rule(param.step > 0, source, f"{where}.step", f"must be > 0, got {param.step}")
        check_rule(
            param.step <= high - low,
            source,
            f"{where}.step",
            f"{param.step} is wider than the range {low}..{high}",
        )
        if kind == "int":
            check_rule(
                float(param.step).is_integer(), source, f"{where}.step", "must be an integer"
            )
    check_rule(
        not param.log or kind == "int", source, f"{where}.log", "only for int (use loguniform)"
    )
    return param


def start_points(
    search: SearchAlgorithm,
    params: tuple[Param, ...],
    trainer: TrainConfig,
    budget: Budget,
    source: str,
) -> tuple[dict, ...]:
    """`search.start_with`, each value checked against its parameter and each configuration
    against the trainer; returned with Optuna's encoding of the values."""
    given = search.start_with
    check_rule(
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
        check_rule(
            bool(entry), source, where, "an empty configuration: give searched keys and values"
        )
        point = {}
        for key, value in entry.items():
            param = searched.get(key)
            check_rule(
                param is not None,
                source,
                f"{where}.{key}",
                f"not a searched parameter (searched: {', '.join(searched)})",
            )
            point[key] = _start_value(param, value, source, f"{where}.{key}")
        try:
            apply_values(trainer, params, point, source)
        except ConfigError as exc:
            fail(source, where, f"the trainer refuses it: {str(exc).split(': ', 2)[-1]}")
        points.append(point)
    return tuple(points)


def _start_value(param: Param, value: Any, source: str, where: str) -> Any:
    """One value of a start_with configuration, as Optuna stores it, if `param` could draw it."""
    if param.distribution == "categorical":
        choices = [optuna_value(c) for c in param.choices or ()]
        encoded = optuna_value(value)
        check_rule(
            encoded in choices,
            source,
            where,
            f"{value!r} is not one of the choices {list(param.choices or ())}",
        )
        return encoded
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if param.distribution == "int":
        check_rule(
            number and isinstance(value, int), source, where, f"must be an integer, got {value!r}"
        )
    else:
        check_rule(number, source, where, f"must be a number, got {value!r}")
        check_rule(math.isfinite(value), source, where, f"must be finite, got {value!r}")
        value = float(value)
    low, high = param.low, param.high
    check_rule(
        low <= value <= high, source, where, f"{value!r} is outside the range {low:g}..{high:g}"
    )
    if param.step is not None:
        steps = (value - low) / param.step
        check_rule(
            math.isclose(steps, round(steps), abs_tol=1e-9),
            source,
            where,
            f"{value!r} is not on the grid {low:g}, {low + param.step:g}, ... "
            f"(step {param.step:g})",
        )
    return value


_LOCK_TYPE = type(threading.Lock())


class _PicklesWithoutLocks:
    """Pickles a sampler without its thread locks and gives it new ones when unpickled.

    Optuna 5.1's genetic samplers (NSGA-II) keep a threading.Lock, which cannot be pickled, and
    Ray Tune pickles the searcher (its study and sampler with it) into the experiment's state.
    A lock guards nothing across processes, so a fresh one is what a restored sampler needs.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        locks = [key for key, value in state.items() if isinstance(value, _LOCK_TYPE)]
        for key in locks:
            del state[key]
        state["_gansearch_locks"] = locks
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in state.pop("_gansearch_locks", ()):
            state[key] = threading.Lock()
        self.__dict__.update(state)


class NSGAIISampler(_PicklesWithoutLocks, optuna.samplers.NSGAIISampler):
    """Optuna's NSGAIISampler, picklable into Ray Tune's experiment state."""


PICKLABLE_SAMPLERS: dict[str, type] = {"nsgaii": NSGAIISampler}


def make_sampler(search: SearchAlgorithm) -> optuna.samplers.BaseSampler:
    """The Optuna sampler named by the search section, seeded (and picklable, since Ray Tune
    pickles it with the experiment)."""
    cls = PICKLABLE_SAMPLERS.get(search.algorithm) or getattr(
        optuna.samplers, SAMPLERS[search.algorithm]
    )
    return cls(seed=search.seed, **search.options)
