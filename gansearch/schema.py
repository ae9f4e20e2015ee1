"""Typed YAML configuration: read a file, build frozen pydantic dataclasses, name file and key
on error.

Shared by the trainer configuration and the search-space file, so both report problems the same
way: `FILE: KEY.PATH: what is wrong`, raised as :class:`~gansearch.errors.ConfigError`.

The classes say what is allowed and pydantic checks it: the annotation gives the type
(`Literal[...]` for a fixed set of choices, `X | None` where null is allowed, `tuple[X, ...]` for
a list, `Annotated[X, Field(ge=...)]` for a list's entries) and `Field` the bounds, a minimum
length or a pattern. :func:`build` turns pydantic's first error into gansearch's message, and
:func:`json_schema` publishes the same rules for editors. Only rules that span several fields
stay hand-written, beside the classes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import pydantic
import pydantic.dataclasses
import pydantic.fields
import yaml
from pydantic import Strict

from gansearch.errors import ConfigError
from gansearch.inputs import read_bounded

T = TypeVar("T")


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

    Only a regular file is read (a device or a FIFO would never end, or never begin), and no
    more than 1 MiB of it; a file whose aliases expand to more than 100,000 values is refused
    before anything walks it.
    """
    source = str(path)
    raw = read_bounded(path, MAX_YAML_BYTES, "a configuration", ConfigError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: cannot read: {exc}") from None
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


# ----------------------------------------------------------------------------- declaring settings

Int = Annotated[int, Strict()]  # an integer, not true/false or 2.0
Float = Annotated[float, Strict()]  # a number (an integer is taken as a float), not true/false
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]


@dataclass(frozen=True)
class Says:
    """How error messages speak of a setting: `noun` for a choice ("unknown scheduler 'x'"),
    `null` for what null means ("must be >= 1 or null (no limit)"). A pattern's meaning is the
    field's description."""

    noun: str = ""
    null: str = ""


settings = functools.partial(
    pydantic.dataclasses.dataclass,
    frozen=True,
    config=pydantic.ConfigDict(extra="forbid", use_attribute_docstrings=True),
)
"""Decorator for a frozen section of settings: validated on construction (also through
dataclasses.replace), unknown keys refused, attribute docstrings as JSON Schema descriptions."""


def build(cls: type[T], raw: Any, prefix: str, source: str) -> T:
    """Build the settings class `cls` from plain data, or raise `SOURCE: KEY: reason` for the
    first problem: unknown keys, wrong types, choices and bounds."""
    try:
        return cls.__pydantic_validator__.validate_python(raw)  # type: ignore[attr-defined]
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        key, message = explain(cls, error, prefix)
        fail(source, key, message)


def replace(obj: T, prefix: str, source: str, **changes: Any) -> T:
    """`dataclasses.replace` whose problems are reported as `build` reports them."""
    plain = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
    return build(type(obj), {**plain, **changes}, prefix, source)


def json_schema(cls: type, title: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a settings class, for editors and other tools."""
    schema = pydantic.TypeAdapter(cls).json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}


# ----------------------------------------------------------------------------- error messages


@dataclass
class _Place:
    """Where a validation error points: its dotted key, the annotation and constraints there,
    and the settings class that holds it (for the list of valid keys)."""

    key: str
    annotation: Any
    metadata: list[Any]
    holder: type | None


def explain(cls: type, error: Mapping[str, Any], prefix: str) -> tuple[str, str]:
    """(KEY, reason) for one pydantic error, in gansearch's words."""
    place = _locate(cls, error["loc"], prefix)
    kind, value = error["type"], error.get("input")
    says = next((m for m in place.metadata if isinstance(m, Says)), Says())
    if kind in ("unexpected_keyword_argument", "extra_forbidden", "invalid_key"):
        valid = sorted(place.holder.__dataclass_fields__) if place.holder else []
        return place.key, f"unknown key (valid here: {', '.join(valid)})"
    if kind in ("missing", "missing_argument"):
        return place.key, "required"
    if kind in ("dataclass_type", "dataclass_args_type", "dict_type"):
        keys = getattr(place.annotation, "__dataclass_fields__", None)
        listed = f" ({', '.join(keys)})" if keys else ""
        what = f"must be a mapping of keys to values{listed}, got {value!r}"
        return (place.key, what) if place.key else ("", f"top level {what}")
    if kind == "literal_error":
        choices = _choices(place.annotation)
        if says.noun and value is not None:
            return place.key, f"unknown {says.noun} {value!r}; choose one of {_listed(choices)}"
        return place.key, f"must be one of {_listed(choices)}, got {value!r}"
    if kind in _BOUND_ERRORS:
        problem = _range(place.metadata)
        if type(None) in typing.get_args(place.annotation):
            problem += " or null" + (f" ({says.null})" if says.null else "")
        return place.key, f"{problem}, got {value!r}"
    if kind == "too_short":
        return place.key, (
            f"must list at least {error['ctx']['min_length']} value(s), got {list(value)}"
        )
    if kind == "string_pattern_mismatch":
        info = _field_info(place.metadata)
        means = (info.description if info else None) or f"of the form {error['ctx']['pattern']}"
        return place.key, f"must be {means}, got {value!r}"
    if kind.endswith("_type") or kind.startswith(("union_", "bool_", "int_", "float_")):
        return place.key, f"must be {type_name(place.annotation)}, got {value!r}"
    return place.key, f"{error['msg']}, got {value!r}"


_BOUND_ERRORS = (
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "finite_number",
)


def _locate(cls: type, loc: tuple[Any, ...], prefix: str) -> _Place:
    """Follow an error's location through the settings classes, lists and mappings."""
    place = _Place(prefix, cls, [], None)
    for part in loc:
        annotation, metadata = _unwrap(place.annotation)
        if pydantic.dataclasses.is_pydantic_dataclass(annotation) and isinstance(part, str):
            fields = annotation.__pydantic_fields__
            key = f"{place.key}.{part}" if place.key else part
            if part not in fields:
                return _Place(key, Any, [], annotation)
            info = fields[part]
            place = _Place(key, info.annotation, [info, *info.metadata], annotation)
        elif typing.get_origin(annotation) is tuple and isinstance(part, int):
            item = typing.get_args(annotation)[0]
            place = _Place(f"{place.key}[{part}]", item, [], place.holder)
        elif typing.get_origin(annotation) is dict and isinstance(part, str):
            item = typing.get_args(annotation)[1]
            place = _Place(f"{place.key}.{part}", item, [], place.holder)
        else:  # a member of a union: speak of the union
            return _Place(place.key, annotation, place.metadata + metadata, place.holder)
    annotation, metadata = _unwrap(place.annotation)
    return _Place(place.key, annotation, place.metadata + metadata, place.holder)


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """An annotation without Annotated[...] and nullable wrappers' constraints, and the
    constraints and markers it carried (those inside `X | None` included)."""
    metadata: list[Any] = []
    while typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        for item in extra:
            metadata += [item, *getattr(item, "metadata", [])]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        inner = [_unwrap(a) for a in args]
        metadata += [m for _, found in inner for m in found]
        annotation = typing.Union[tuple(a for a, _ in inner)]  # noqa: UP007 - built from a tuple
    return annotation, metadata


def _field_info(metadata: list[Any]) -> pydantic.fields.FieldInfo | None:
    return next((m for m in metadata if isinstance(m, pydantic.fields.FieldInfo)), None)


def _range(metadata: list[Any]) -> str:
    """'must be in (0, 1]' or 'must be >= 1' from a field's constraints."""
    bounds = {}  # pydantic's Ge, Gt, Le and Lt constraints each carry one of these attributes
    for item in metadata:
        for name in ("ge", "gt", "le", "lt"):
            if type(item).__name__ == name.capitalize() and name not in bounds:
                bounds[name] = getattr(item, name)
    lower = [("[", ">=", bounds["ge"])] if "ge" in bounds else []
    lower += [("(", ">", bounds["gt"])] if "gt" in bounds else []
    upper = [("]", "<=", bounds["le"])] if "le" in bounds else []
    upper += [(")", "<", bounds["lt"])] if "lt" in bounds else []
    if lower and upper:
        (opening, _, low), (closing, _, high) = lower[0], upper[0]
        return f"must be in {opening}{low:g}, {high:g}{closing}"
    if lower or upper:
        _, sign, bound = (lower or upper)[0]
        return f"must be {sign} {bound:g}"
    return "must be finite"


def type_name(tp: Any) -> str:
    """A reader's name for a type annotation: 'an integer', 'a list of a number', ..."""
    tp, _ = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if origin is dict or tp is dict or pydantic.dataclasses.is_pydantic_dataclass(tp):
        return "a mapping of keys to values"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + _listed(typing.get_args(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _choices(annotation: Any) -> tuple[Any, ...]:
    annotation, _ = _unwrap(annotation)
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return ()


def _listed(choices: tuple[Any, ...]) -> str:
    return ", ".join(map(str, choices))
