"""Reading a search-space file (and an experiment's stored copy) into a validated SearchSpace."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gansearch.data import DATASETS, LABELLED_DATASETS
from gansearch.errors import ConfigError, UsageError
from gansearch.experiment import META_FILE, SPACE_COPY, stored_budget
from gansearch.schema import build, fail, read_yaml
from gansearch.space.rules import (
    check_mutations,
    check_sections,
    parse_param,
    start_points,
)
from gansearch.space.sections import (
    OWNED,
    Budget,
    Objective,
    Param,
    SearchSpace,
    SpaceFile,
    apply_values,
    check_rule,
    optuna_value,
)
from gansearch.train_config import (
    DataConfig,
    TrainConfig,
    config_from_dict,
    config_keys,
    config_to_dict,
)

SECTIONS = ("search", "scheduler", "budget", "resources", "objective", "results", "chaos")


def load_space(path: str | Path) -> SearchSpace:
    """Read and fully validate a search-space file; raise ConfigError naming file and key."""
    source = str(path)
    raw = read_yaml(path)
    if isinstance(raw, Mapping):  # an empty section takes its defaults
        raw = {k: v for k, v in raw.items() if v is not None or k not in (*SECTIONS, "trainer")}
    written = build(SpaceFile, raw, "", source)
    parsed = {key: getattr(written, key) for key in SECTIONS}
    if parsed["search"].algorithm is None:
        default = "nsgaii" if parsed["objective"].multi else "tpe"
        parsed["search"] = dataclasses.replace(parsed["search"], algorithm=default)
    check_sections(parsed, source)
    trainer = _trainer(raw, written.dataset, parsed["objective"], parsed["budget"], source)
    params = _params(raw, trainer, source)
    if parsed["scheduler"].type == "pbt":
        check_mutations(parsed["scheduler"], params, source)
    points = start_points(parsed["search"], params, trainer, parsed["budget"], source)
    parsed["search"] = dataclasses.replace(parsed["search"], start_with=points)
    name = written.name or Path(source).stem
    return SearchSpace(source=source, name=name, trainer=trainer, params=params, **parsed)


def _trainer(
    raw: Mapping[str, Any], dataset: DataConfig, objective: Objective, budget: Budget, source: str
) -> TrainConfig:
    """The fixed trainer settings: the `trainer` section with the data set, the epochs and the
    evaluation settings that other sections own."""
    check_rule(
        dataset.name in DATASETS,
        source,
        "dataset.name",
        f"unknown data set {dataset.name!r}; choose one of {', '.join(DATASETS)}",
    )
    check_rule(
        not objective.needs_quality or dataset.name in LABELLED_DATASETS,
        source,
        "objective",
        f"FID, coverage and confidence need a classifier trained on labelled data "
        f"({', '.join(LABELLED_DATASETS)}); {dataset.name} has no class labels",
    )
    trainer_raw = raw.get("trainer") or {}
    for owned, owner in OWNED.items():
        part, _, leaf = owned.partition(".")
        present = part in trainer_raw and (
            not leaf or (isinstance(trainer_raw[part], Mapping) and leaf in trainer_raw[part])
        )
        if present:
            fail(source, f"trainer.{owned}", f"set by {owner} in a search space")
    merged = dict(trainer_raw)
    merged["eval"] = {
        **(trainer_raw.get("eval") or {}),
        "every": objective.eval_every,
        "samples": objective.samples,
        "n_valid": objective.n_valid,
    }
    merged["data"] = dataclasses.asdict(dataset)
    merged["epochs"] = budget.max_epochs
    try:
        return config_from_dict(merged, f"{source}: trainer")
    except ConfigError as exc:
        raise ConfigError(
            str(exc).replace(f"{source}: trainer: ", f"{source}: trainer.", 1)
        ) from None


def _params(raw: Mapping[str, Any], trainer: TrainConfig, source: str) -> tuple[Param, ...]:
    """The searched parameters, each a trainer setting whose every bound and choice the trainer
    accepts."""
    params_raw = raw.get("params")
    if not isinstance(params_raw, Mapping) or not params_raw:
        fail(source, "params", "required: a mapping of trainer keys to distributions")
    valid_keys = set(config_keys())
    defaults = config_to_dict(trainer)
    list_keys = {k for k in valid_keys if isinstance(_lookup(defaults, k), list)}
    params = tuple(
        parse_param(key, spec, valid_keys, list_keys, source) for key, spec in params_raw.items()
    )
    for param in params:
        for value in param.extremes():
            try:
                apply_values(trainer, params, {param.key: optuna_value(value)}, source)
            except ConfigError as exc:
                reason = str(exc).split(": ", 2)[-1]
                fail(source, f"params.{param.key}", f"value {value!r} is impossible: {reason}")
    return params


def stored_space(experiment_dir: Path) -> SearchSpace:
    """The space a search ran: the experiment's copy of its file with the budget it ran with."""
    space = load_space(experiment_dir / SPACE_COPY)
    budget = stored_budget(experiment_dir)
    if budget:
        try:
            space = space.with_budget(**budget)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{experiment_dir / META_FILE}: budget {budget}: {exc}") from None
    return space


def _lookup(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node
