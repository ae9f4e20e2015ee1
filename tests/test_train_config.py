"""The training configuration (gansearch.train_config): the shipped files, configuration files
with their errors named by file and key, overrides by dotted key, and an empty file refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gansearch.cli import main
from gansearch.errors import ConfigError
from gansearch.train_config import (
    TrainConfig,
    apply_overrides,
    config_keys,
    config_to_dict,
    load_config,
)
from tests.support.train_configs import write

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_shipped_paper_config_is_exactly_the_defaults() -> None:
    assert load_config(CONFIGS / "mnist_paper.yaml") == TrainConfig()
    d = TrainConfig()
    assert (d.generator.units, d.discriminator.units, d.discriminator.pieces) == (
        (1200, 1200),
        (240, 240),
        5,
    )
    assert d.discriminator.keep_probs == (0.8, 0.5, 0.5)
    assert (d.optim.lr_d, d.optim.lr_g, d.optim.lr_decay, d.optim.lr_min) == (
        0.1,
        0.1,
        1.000004,
        1e-6,
    )


def test_shipped_algorithm1_config_differs_from_the_defaults_only_in_the_update_rule() -> None:
    literal = load_config(CONFIGS / "mnist_algorithm1.yaml")
    assert literal == apply_overrides(TrainConfig(), {"optim.update": "alternating"})


def test_quick_config_loads() -> None:
    cfg = load_config(CONFIGS / "digits_quick.yaml")
    assert cfg.data.name == "digits"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optim:\n  lr_x: 0.1\n", r"x\.yaml: optim\.lr_x: unknown key"),
        ("colour: red\n", r"x\.yaml: colour: unknown key"),
        ("optim:\n  k: two\n", r"x\.yaml: optim\.k: must be an integer, got 'two'"),
        ("optim:\n  k: 1.5\n", r"x\.yaml: optim\.k: must be an integer"),
        ("optim:\n  lr_d: true\n", r"x\.yaml: optim\.lr_d: must be a number"),
        ("generator:\n  units: 1200\n", r"x\.yaml: generator\.units: must be a list of"),
        ("optim:\n  k: 0\n", r"x\.yaml: optim\.k: must be >= 1, got 0"),
        (
            "discriminator:\n  keep_probs: [1.5, 0.5, 0.5]\n",
            r"x\.yaml: discriminator\.keep_probs\[0\]: must be in \(0, 1\], got 1\.5",
        ),
        ("discriminator:\n  keep_probs: [0.8, 0.5]\n", r"discriminator\.keep_probs: needs 3"),
        ("optim: 3\n", r"x\.yaml: optim: must be a mapping"),
        ("optim: {g_loss: wasserstein}\n", r"optim\.g_loss: must be one of"),
        ("optim: {update: sequential}\n", r"x\.yaml: optim\.update: must be one of"),
        ("optim:\n  lr_d: [0.1\n", r"x\.yaml: YAML syntax error"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")


def test_exponent_floats_without_dot_are_numbers(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "optim:\n  lr_min: 1e-5\n  lr_d: 5e-2\n"))
    assert (cfg.optim.lr_min, cfg.optim.lr_d) == (1e-5, 0.05)


def test_overrides_by_dotted_key_are_validated() -> None:
    base = TrainConfig()
    cfg = apply_overrides(
        base,
        {"optim.lr_d": 0.05, "discriminator.units": [100], "discriminator.keep_probs": [0.9, 0.5]},
    )
    assert cfg.optim.lr_d == 0.05 and cfg.discriminator.units == (100,)
    assert base.optim.lr_d == 0.1  # the original is untouched (frozen)
    with pytest.raises(ConfigError, match=r"search: optim\.lr_q: unknown key"):
        apply_overrides(base, {"optim.lr_q": 1.0}, source="search")
    with pytest.raises(ConfigError, match=r"optim\.k: must be >= 1"):
        apply_overrides(base, {"optim.k": 0})
    with pytest.raises(ConfigError, match=r"discriminator\.keep_probs: needs 2"):
        apply_overrides(base, {"discriminator.units": [100]})


def test_config_keys_lists_every_leaf_and_each_round_trips() -> None:
    keys = config_keys()
    assert {"optim.lr_d", "optim.k", "discriminator.units", "generator.noise", "seed"} <= set(keys)
    assert "optim" not in keys
    base = TrainConfig()
    flat = {}
    for key in keys:
        node = config_to_dict(base)
        for part in key.split("."):
            node = node[part]
        flat[key] = node
    assert apply_overrides(base, flat) == base


@pytest.mark.parametrize("content", ["", "null\n", "{}\n", "# only a comment\n"])
def test_an_empty_training_config_is_an_error_not_the_papers(tmp_path, capsys, content):
    config = tmp_path / "empty.yaml"
    config.write_text(content)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert f"{config}: is empty" in _err(capsys)
    assert not (tmp_path / "out").exists()
