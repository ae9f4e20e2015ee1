"""Typed YAML configuration: read a file, build frozen dataclasses, name file and key on error.

Shared by the trainer configuration and the search-space file, so both report problems the same
way: `FILE: KEY.PATH: what is wrong`, raised as :class:`~gansearch.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file; a missing file or a syntax error is a ConfigError naming the file."""
    source = str(path)
    try:
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
        return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: YAML syntax error{at}: {problem}") from None


def fail(source: str, key: str, message: str) -> typing.NoReturn:
    """Raise the ConfigError `SOURCE: KEY: message`."""
    raise ConfigError(f"{source}: {key}: {message}" if key else f"{source}: {message}")


def type_name(tp: Any) -> str:
    """A reader's name for a type annotation: 'an integer', 'a list of a number', ..."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
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
            kwargs[f.name] = coerce(raw[f.name], tp, full, source)
    return cls(**kwargs)
