"""The declarative schema: choices from Literal annotations, bounds from field metadata, checked
the same way for the trainer configuration and the search-space sections."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Literal

import pytest

from gansearch.errors import ConfigError
from gansearch.schema import build, check, setting
from gansearch.space import Budget, Objective, Resources, Scheduler
from gansearch.train_config import TrainConfig, config_from_dict, config_keys, validate


@dataclass(frozen=True)
class Example:
    kind: Literal["a", "b"] = "a"
    named: Literal["x", "y"] = setting("x", noun="flavour")
    count: int = setting(1, ge=1)
    ratio: float = setting(0.5, gt=0, le=1)
    limit: int | None = setting(None, ge=1, null="no limit")
    widths: tuple[int, ...] = setting((4,), ge=1, min_items=1)
    device: str = setting("cpu", pattern=r"cpu|cuda(:\d+)?", means="cpu or cuda[:N]")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "c"}, "f.yaml: kind: must be one of a, b, got 'c'"),
        ({"named": "z"}, "f.yaml: named: unknown flavour 'z'; choose one of x, y"),
        ({"count": 0}, "f.yaml: count: must be >= 1, got 0"),
        ({"ratio": 0}, "f.yaml: ratio: must be in (0, 1], got 0.0"),
        ({"ratio": float("inf")}, "f.yaml: ratio: must be in (0, 1], got inf"),
        ({"ratio": float("nan")}, "f.yaml: ratio: must be in (0, 1], got nan"),
        ({"limit": 0}, "f.yaml: limit: must be >= 1 or null (no limit), got 0"),
        ({"widths": [4, 0]}, "f.yaml: widths[1]: must be >= 1, got 0"),
        ({"widths": []}, "f.yaml: widths: must list at least 1 value(s), got []"),
        ({"device": "gpu"}, "f.yaml: device: must be cpu or cuda[:N], got 'gpu'"),
        ({"count": True}, "f.yaml: count: must be an integer, got True"),
    ],
)
def test_choices_and_bounds_come_from_the_dataclass(raw, message):
    with pytest.raises(ConfigError) as caught:
        build(Example, raw, "", "f.yaml")
    assert str(caught.value) == message


def test_good_values_pass_and_null_is_allowed_where_the_type_says():
    built = build(
        Example, {"kind": "b", "limit": None, "widths": [1, 2], "device": "cuda:1"}, "", "f"
    )
    assert built == Example(kind="b", limit=None, widths=(1, 2), device="cuda:1")


def test_check_catches_values_set_in_code():
    with pytest.raises(ConfigError, match=r"code: epochs: must be >= 0, got -1"):
        validate(dataclasses.replace(TrainConfig(), epochs=-1), "code")
    with pytest.raises(ConfigError, match=r"code: x\.count: must be >= 1, got 0"):
        check(Example(count=0), "x", "code")


def _rules(cls: type, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, type, Rule) of every bounded leaf of a dataclass tree."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            found += _rules(hints[f.name], key + ".")
        elif "rule" in f.metadata:
            found.append((key, hints[f.name], f.metadata["rule"]))
    return found


def _just_outside(rule) -> float | None:
    for bound, step in ((rule.ge, -1), (rule.gt, 0), (rule.le, 1), (rule.lt, 0)):
        if bound is not None:
            return bound + step
    return None


BOUNDED_TRAINER_KEYS = [
    (key, tp, rule) for key, tp, rule in _rules(TrainConfig) if _just_outside(rule) is not None
]


@pytest.mark.parametrize(
    ("key", "tp", "rule"), BOUNDED_TRAINER_KEYS, ids=[key for key, *_ in BOUNDED_TRAINER_KEYS]
)
def test_every_bounded_trainer_setting_refuses_a_value_just_outside(key, tp, rule):
    assert key in config_keys()
    value = _just_outside(rule)
    is_list = typing.get_origin(tp) is tuple
    raw: dict = {}
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = [value] if is_list else value
    where = re.escape(f"x.yaml: {key}")
    with pytest.raises(ConfigError, match=rf"{where}(\[0\])?: must be"):
        config_from_dict(raw, "x.yaml")


@pytest.mark.parametrize("cls", [Scheduler, Budget, Resources, Objective])
def test_space_sections_declare_their_bounds(cls):
    rules = _rules(cls)
    assert rules, f"{cls.__name__} declares no bounds"
    for key, _, rule in rules:
        value = _just_outside(rule)
        if value is None:
            continue
        with pytest.raises(ConfigError, match=rf"s\.yaml: sec\.{key}: must be"):
            build(cls, {key: value}, "sec", "s.yaml")
