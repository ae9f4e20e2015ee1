"""Typed YAML configuration: read a file, build frozen dataclasses, name file and key on error.

Shared by the trainer configuration and the search-space file, so both report problems the same
way: `FILE: KEY.PATH: what is wrong`, raised as :class:`~gansearch.errors.ConfigError`.

The dataclasses say what is allowed and :func:`build` reads it: the annotation gives the type
(`Literal[...]` for a fixed set of choices, `X | None` where null is allowed, `tuple[X, ...]` for
a list) and :func:`setting` puts bounds, a minimum length or a pattern in the field's metadata
(a list's bounds hold for each entry). Only rules that span several fields stay hand-written.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from gansearch.errors import ConfigError


class YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-6` as a float (YAML 1.1 wants `1.0e-6`)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


MAX_YAML_BYTES = 1 << 20  # a configuration or search space is a few kilobytes
MAX_YAML_VALUES = 100_000  # values after YAML aliases are expanded (an alias bomb has billions)
MAX_MESSAGE = 600  # characters of an error message: values in it are cut short


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file; a missing file or a syntax error is a ConfigError naming the file.

    A file over 1 MiB, or one whose aliases expand to more than 100,000 values, is refused
    before anything walks it.
    """
    source = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_YAML_BYTES:
            fail(source, "", f"{size:,} bytes: too large for a configuration (at most 1 MiB)")
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{source}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        data = yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: YAML syntax error{at}: {problem}") from None
    if _count_values(data, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        fail(
            source,
            "",
            f"expands to more than {MAX_YAML_VALUES:,} values (YAML aliases repeating "
            "themselves?): refused",
        )
    return data


def _count_values(data: Any, limit: int) -> int:
    """How many values `data` holds when every alias is expanded, counting no further than
    just past `limit` (aliases share objects, so the walk must stop early)."""
    count, stack = 0, [data]
    while stack and count <= limit:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def fail(source: str, key: str, message: str) -> typing.NoReturn:
    """Raise the ConfigError `SOURCE: KEY: message`, cut short if a value in it is long."""
    text = f"{source}: {key}: {message}" if key else f"{source}: {message}"
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 40] + f"... ({len(text):,} characters in all)"
    raise ConfigError(text)


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Rule:
    """What a setting's value must satisfy beyond its type (None: no such rule)."""

    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    le: float | None = None
    lt: float | None = None
    min_items: int | None = None  # for lists
    pattern: str | None = None  # a regular expression the whole string must match
    means: str = ""  # what the pattern accepts, for the message
    noun: str = ""  # for Literal choices: "unknown NOUN 'x'; choose one of ..."
    null: str = ""  # what null means, for the message ("no limit")

    def problem(self, value: Any) -> str | None:
        """Why `value` (one entry of a list, or a scalar) breaks the rule, or None."""
        if isinstance(value, str):
            if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
                return f"must be {self.means or 'of the form ' + self.pattern}"
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        lower = [(">=", self.ge, "[")] if self.ge is not None else []
        lower += [(">", self.gt, "(")] if self.gt is not None else []
        upper = [("<=", self.le, "]")] if self.le is not None else []
        upper += [("<", self.lt, ")")] if self.lt is not None else []
        if not lower and not upper:
            return None
        holds = [_COMPARE[sign](value, bound) for sign, bound, _ in lower + upper]
        if math.isfinite(value) and all(holds):
            return None
        if lower and upper:
            (_, low, opening), (_, high, closing) = lower[0], upper[0]
            return f"must be in {opening}{low:g}, {high:g}{closing}"
        sign, bound, _ = (lower or upper)[0]
        return f"must be {sign} {bound:g}"


def setting(default: Any = dataclasses.MISSING, **rule: Any) -> Any:
    """A dataclass field whose value obeys `Rule(**rule)`; `build` and `check` enforce it."""
    return dataclasses.field(default=default, metadata={"rule": Rule(**rule)})


def type_name(tp: Any) -> str:
    """A reader's name for a type annotation: 'an integer', 'a list of a number', ..."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + _listed(typing.get_args(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp`; return it in canonical form (lists -> tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:
            return coerce(value, others[0], key, source)
        for option in others:  # e.g. int | str: the first that accepts the value
            try:
                return coerce(value, option, key, source)
            except ConfigError:
                continue
        fail(source, key, f"must be {type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if not any(value == c and type(value) is type(c) for c in choices):
            fail(source, key, f"must be one of {_listed(choices)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            fail(source, key, f"must be {type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            fail(source, key, f"must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(source, key, f"must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(source, key, f"must be an integer, got {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            fail(source, key, f"must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            fail(source, key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # programming error


def build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    """Build dataclass `cls` from plain data: unknown keys and wrong types name their key."""
    if not isinstance(raw, Mapping):
        what = f"must be a mapping of keys to values, got {raw!r}"
        fail(source, prefix, what) if prefix else fail(source, "", f"top level {what}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            full = f"{prefix}.{key}" if prefix else str(key)
            fail(source, full, f"unknown key (valid here: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        full = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = build(tp, raw[f.name], full, source)
        else:
            rule: Rule | None = f.metadata.get("rule")
            choices = _literal_choices(tp)
            value = raw[f.name]
            if rule is not None and rule.noun and value is not None and value not in choices:
                fail(
                    source, full, f"unknown {rule.noun} {value!r}; choose one of {_listed(choices)}"
                )
            kwargs[f.name] = coerce(value, tp, full, source)
            _check_field(f, tp, kwargs[f.name], full, source)
    return cls(**kwargs)


def check(obj: Any, prefix: str, source: str) -> None:
    """Enforce every field's rule and choices in a built dataclass tree (e.g. one made in code,
    or changed with dataclasses.replace)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        full = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            check(value, full, source)
        else:
            _check_field(f, hints[f.name], coerce(value, hints[f.name], full, source), full, source)


def _check_field(f: dataclasses.Field, tp: Any, value: Any, key: str, source: str) -> None:
    """The field's Rule, on each entry of a list."""
    rule: Rule | None = f.metadata.get("rule")
    if rule is None or value is None:
        return
    if isinstance(value, tuple):
        if rule.min_items is not None and len(value) < rule.min_items:
            fail(source, key, f"must list at least {rule.min_items} value(s), got {list(value)}")
        for i, item in enumerate(value):
            problem = rule.problem(item)
            if problem:
                fail(source, f"{key}[{i}]", f"{problem}, got {item!r}")
        return
    problem = rule.problem(value)
    if problem:
        nullable = type(None) in typing.get_args(tp)
        if nullable:
            problem += " or null" + (f" ({rule.null})" if rule.null else "")
        fail(source, key, f"{problem}, got {value!r}")


def _listed(choices: tuple[Any, ...]) -> str:
    return ", ".join(map(str, choices))


def _literal_choices(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return ()
