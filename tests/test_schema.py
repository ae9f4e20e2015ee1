"""The declarative schema: pydantic checks types, choices and bounds, gansearch words the first
problem as `FILE: KEY: reason`, the published JSON Schemas say the same as the checks, and YAML
crafted to exhaust memory is refused before anything large is built."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Annotated, Literal

import jsonschema
import pydantic
import pytest
import yaml
from pydantic import Field

from gansearch.cli import main
from gansearch.commands.schema import render
from gansearch.errors import ConfigError
from gansearch.schema import MAX_MESSAGE, Float, Int, Says, Str, build, read_yaml, replace, settings
from gansearch.space import Budget, Objective, Resources, Scheduler, SpaceFile, space_schema
from gansearch.train_config import TrainConfig, config_from_dict, config_keys, config_schema
from tests.support.guarded_cli import run_guarded

ROOT = Path(__file__).parents[1]
SHIPPED = {
    "space": sorted((ROOT / "search_spaces").glob("*.yaml")),
    "config": sorted((ROOT / "configs").glob("*.yaml")),
}
COMMITTED = {
    "space": ROOT / "schemas/space.schema.json",
    "config": ROOT / "schemas/train-config.schema.json",
}


@settings
class Inner:
    count: Int = Field(1, ge=1)


@settings
class Example:
    kind: Literal["a", "b"] = "a"
    named: Annotated[Literal["x", "y"], Says(noun="flavour")] = "x"
    count: Int = Field(1, ge=1)
    ratio: Float = Field(0.5, gt=0, le=1)
    limit: Annotated[Int | None, Says(null="no limit")] = Field(None, ge=1)
    widths: tuple[Annotated[Int, Field(ge=1)], ...] = Field((4,), min_length=1)
    device: Str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="cpu or cuda[:N]")
    metric: Str | tuple[Str, ...] = "m"
    inner: Inner = dataclasses.field(default_factory=Inner)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "c"}, "f.yaml: kind: must be one of a, b, got 'c'"),
        ({"named": "z"}, "f.yaml: named: unknown flavour 'z'; choose one of x, y"),
        ({"count": 0}, "f.yaml: count: must be >= 1, got 0"),
        ({"ratio": 0}, "f.yaml: ratio: must be in (0, 1], got 0"),
        ({"ratio": float("inf")}, "f.yaml: ratio: must be in (0, 1], got inf"),
        ({"ratio": float("nan")}, "f.yaml: ratio: must be in (0, 1], got nan"),
        ({"limit": 0}, "f.yaml: limit: must be >= 1 or null (no limit), got 0"),
        ({"widths": [4, 0]}, "f.yaml: widths[1]: must be >= 1, got 0"),
        ({"widths": []}, "f.yaml: widths: must list at least 1 value(s), got []"),
        ({"widths": [4, 2.0]}, "f.yaml: widths[1]: must be an integer, got 2.0"),
        ({"device": "gpu"}, "f.yaml: device: must be cpu or cuda[:N], got 'gpu'"),
        ({"count": True}, "f.yaml: count: must be an integer, got True"),
        ({"count": "3"}, "f.yaml: count: must be an integer, got '3'"),
        ({"ratio": True}, "f.yaml: ratio: must be a number, got True"),
        ({"metric": 3}, "f.yaml: metric: must be a string or a list of a string, got 3"),
        ({"inner": {"count": 0}}, "f.yaml: inner.count: must be >= 1, got 0"),
        ({"inner": 5}, "f.yaml: inner: must be a mapping of keys to values (count), got 5"),
        ({"inner": {"cnt": 2}}, "f.yaml: inner.cnt: unknown key (valid here: count)"),
        (
            {"kinds": "a"},
            "f.yaml: kinds: unknown key (valid here: count, device, inner, "
            "kind, limit, metric, named, ratio, widths)",
        ),
        (
            [1],
            "f.yaml: top level must be a mapping of keys to values (kind, named, count, "
            "ratio, limit, widths, device, metric, inner), got [1]",
        ),
    ],
)
def test_problems_are_worded_with_file_key_and_reason(raw, message):
    with pytest.raises(ConfigError) as caught:
        build(Example, raw, "", "f.yaml")
    assert str(caught.value) == message


def test_a_prefix_names_the_section():
    with pytest.raises(ConfigError, match=r"^s\.yaml: budget\.trials: must be >= 1, got 0$"):
        build(Budget, {"trials": 0}, "budget", "s.yaml")


def test_good_values_pass_lists_become_tuples_and_null_is_allowed_where_the_type_says():
    built = build(
        Example,
        {"kind": "b", "limit": None, "widths": [1, 2], "device": "cuda:1", "ratio": 1},
        "",
        "f",
    )
    assert built == Example(kind="b", limit=None, widths=(1, 2), device="cuda:1", ratio=1.0)
    assert isinstance(built.ratio, float) and isinstance(built.widths, tuple)


def test_values_set_in_code_are_checked_too():
    with pytest.raises(pydantic.ValidationError):
        dataclasses.replace(TrainConfig(), epochs=-1)
    with pytest.raises(ConfigError, match=r"^code: epochs: must be >= 0, got -1$"):
        replace(TrainConfig(), "", "code", epochs=-1)
    with pytest.raises(pydantic.ValidationError):
        Example(count=0)


# ----------------------------------------------------------------------------- JSON Schema


def _bounded(schema: dict, node: dict, prefix: str = "") -> list[tuple[str, bool, dict]]:
    """(dotted key, is a list, bounds) of every leaf of a JSON Schema with a numeric bound."""
    found = []
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        if "$ref" in prop:
            target = schema["$defs"][prop["$ref"].rsplit("/", 1)[-1]]
            found += _bounded(schema, target, key + ".")
            continue
        options = prop.get("anyOf", [prop])
        for option in options:
            is_list = option.get("type") == "array"
            leaf = option.get("items", {}) if is_list else option
            bounds = {k: v for k, v in leaf.items() if k.endswith(("imum", "Minimum", "Maximum"))}
            if bounds:
                found.append((key, is_list, bounds))
    return found


def _just_outside(bounds: dict) -> float:
    for name, step in (
        ("minimum", -1),
        ("exclusiveMinimum", 0),
        ("maximum", 1),
        ("exclusiveMaximum", 0),
    ):
        if name in bounds:
            return bounds[name] + step
    raise AssertionError(bounds)


def _nested(key: str, value: object) -> dict:
    raw: dict = {}
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw


TRAINER_SCHEMA = config_schema()
BOUNDED_TRAINER_KEYS = _bounded(TRAINER_SCHEMA, TRAINER_SCHEMA)


def test_the_schema_covers_every_trainer_setting_and_many_bounds():
    keys = {key for key, *_ in BOUNDED_TRAINER_KEYS}
    assert keys <= set(config_keys())
    assert {"optim.lr_d", "optim.k", "discriminator.keep_probs", "eval.n_valid", "epochs"} <= keys


@pytest.mark.parametrize(
    ("key", "is_list", "bounds"), BOUNDED_TRAINER_KEYS, ids=[k for k, *_ in BOUNDED_TRAINER_KEYS]
)
def test_a_bound_the_schema_publishes_is_the_bound_gansearch_enforces(key, is_list, bounds):
    value = _just_outside(bounds)
    raw = _nested(key, [value] if is_list else value)
    with pytest.raises(ConfigError, match=rf"x\.yaml: {key.replace('.', '[.]')}(\[0\])?: must be"):
        config_from_dict(raw, "x.yaml")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, TRAINER_SCHEMA)


@pytest.mark.parametrize("cls", [Scheduler, Budget, Resources, Objective])
def test_space_sections_publish_their_bounds(cls):
    schema = pydantic.TypeAdapter(cls).json_schema()
    bounded = _bounded(schema, schema)
    assert bounded, f"{cls.__name__} declares no bounds"
    for key, is_list, bounds in bounded:
        value = _just_outside(bounds)
        with pytest.raises(ConfigError, match=rf"s\.yaml: sec\.{key}(\[0\])?: must be"):
            build(cls, {key: [value] if is_list else value}, "sec", "s.yaml")


@pytest.mark.parametrize("kind", sorted(COMMITTED))
def test_the_committed_schemas_are_what_gansearch_schema_prints(kind):
    assert COMMITTED[kind].read_text() == render(kind), (
        f"{COMMITTED[kind]} is stale: run `gansearch schema {kind} --out {COMMITTED[kind]}`"
    )


@pytest.mark.parametrize(
    ("kind", "path"),
    [(kind, path) for kind, paths in SHIPPED.items() for path in paths],
    ids=[path.name for paths in SHIPPED.values() for path in paths],
)
def test_shipped_files_name_their_schema_and_satisfy_it(kind, path):
    first = path.read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema=../{COMMITTED[kind].relative_to(ROOT)}"
    schema = json.loads(COMMITTED[kind].read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_the_space_schema_refuses_what_the_loader_refuses():
    schema = space_schema()
    good = {
        "dataset": {"name": "digits"},
        "params": {"optim.k": {"distribution": "int", "low": 1, "high": 3}},
    }
    jsonschema.validate(good, schema)
    build(SpaceFile, good, "", "s.yaml")
    for bad in (
        {**good, "budgett": {}},
        {**good, "budget": {"trials": 0}},
        {**good, "scheduler": {"type": "hyperband"}},
        {**good, "params": {"optim.k": {"distribution": "normal"}}},
        {**good, "name": "has space"},
        {"params": good["params"]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        with pytest.raises(ConfigError):
            build(SpaceFile, bad, "", "s.yaml")


def test_the_space_schema_leaves_out_what_other_sections_own():
    schema = space_schema()
    good = {
        "dataset": {"name": "digits"},
        "params": {"optim.k": {"distribution": "int", "low": 1, "high": 3}},
    }
    jsonschema.validate({**good, "trainer": {"eval": {"quality": True}, "seed": 3}}, schema)
    for owned in (
        {"epochs": 5},
        {"data": {"name": "mnist"}},
        {"eval": {"every": 2}},
        {"eval": {"n_valid": 10}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, "trainer": owned}, schema)


# ----------------------------------------------------------------------------- bounded YAML
# Files crafted (or mistyped) to exhaust memory, and values too long to quote, get a clear
# message, a non-zero exit and no traceback, before anything large is built.

# 493 bytes that expand to 10**9 strings: each level repeats the one above ten times.
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        read_yaml(path)
    space = tmp_path / "space.yaml"
    space.write_text("name: bomb\n" + BOMB.replace("a: &a", "params: &a", 1))
    assert main(["run", "--space", str(space), "--results-dir", str(tmp_path)]) == 2
    config = tmp_path / "train.yaml"
    config.write_text(BOMB)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = _err(capsys)
    assert err.count("expands to more than 100,000 values") == 2
    assert time.monotonic() - started < 10 and len(err) < 2000


def test_long_values_are_cut_short_in_messages(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(f"name: '{'x/' * 50_000}'\ndataset: {{name: digits}}\n")
    assert main(["run", "--space", str(space), "--results-dir", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "name: must be a name of letters" in err and "characters in all" in err
    assert len(err) < MAX_MESSAGE + 200


def test_a_yaml_file_over_a_mebibyte_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="too large for a configuration"):
        read_yaml(path)


# A device never ends and a FIFO never begins: refused for what they are, before reading.
@pytest.mark.timeout(10)  # the bug this guards against blocks forever in open()
def test_read_yaml_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "space.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(fifo))}: not a regular file \(a FIFO\)$"
    ):
        read_yaml(fifo)
    assert time.monotonic() - started < 1


def test_read_yaml_follows_a_link_to_a_file_and_refuses_a_directory(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("a: 1\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert read_yaml(link) == {"a": 1}
    with pytest.raises(ConfigError, match=r"not a regular file \(a directory\)"):
        read_yaml(tmp_path)


@pytest.mark.slow  # one child process: importing the commands takes seconds
def test_a_device_or_fifo_is_refused_as_a_space_or_configuration(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    kinds = {"/dev/zero": "a character device", str(fifo): "a FIFO"}
    calls = [
        ["run", "--space", path, "--results-dir", str(tmp_path / "results")] for path in kinds
    ] + [["train", "--config", path, "--out", str(tmp_path / "out")] for path in kinds]
    outcomes = run_guarded(
        calls, ["gansearch.search", "gansearch.space", "gansearch.commands.train"]
    )
    for args, outcome in zip(calls, outcomes, strict=True):
        path = args[2]
        assert outcome.code == 2, (args, outcome)
        assert f"{path}: not a regular file ({kinds[path]})" in outcome.err, (args, outcome)
        assert "Traceback" not in outcome.err
        assert outcome.seconds < 1, (args, outcome)
    assert not (tmp_path / "results").exists() and not (tmp_path / "out").exists()
