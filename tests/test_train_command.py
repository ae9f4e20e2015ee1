"""`gansearch train` end to end on digits, configuration files and overrides, sample grids."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gansearch.cli import main
from gansearch.errors import ConfigError
from gansearch.figures import HIGHLIGHT, nearest_rows, sample_grid
from gansearch.train_config import (
    TrainConfig,
    apply_overrides,
    config_keys,
    config_to_dict,
    load_config,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- configuration


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


# ----------------------------------------------------------------------------- figures


def test_sample_grid_png_with_nearest_training_examples(tmp_path: Path) -> None:
    r = np.random.default_rng(0)
    train = r.random((30, 16)).astype(np.float32)
    samples = train[[3, 7, 11, 5, 2, 9]] + 0.01  # nearest neighbours are known
    assert nearest_rows(samples, train, block=7).tolist() == [3, 7, 11, 5, 2, 9]
    path = sample_grid(samples, (4, 4), train, rows=2, cols=3, path=tmp_path / "g.png", scale=1)
    image = np.asarray(Image.open(path))
    # 2 rows of 8-px cells; 3 sample columns + a gap of 4 + a neighbour column.
    assert image.shape == (2 * 8, 4 * 8 + 4, 3)
    assert (image == np.array(HIGHLIGHT, dtype=np.uint8)).all(axis=2).sum() > 0
    assert not (image[:, : 3 * 8] == np.array(HIGHLIGHT, dtype=np.uint8)).all(axis=2).any()


# ----------------------------------------------------------------------------- the command

TINY_DIGITS = """
data: {name: digits}
generator: {noise_dim: 8, units: [32], init_range: 0.1}
discriminator: {units: [16], pieces: 5, keep_probs: [0.8, 0.5], init_range: 0.05}
optim: {batch_size: 50}
eval: {every: 2, samples: 300, n_valid: 100, final_samples: 500, final_n_valid: null,
       grid_rows: 4, grid_cols: 4}
"""


def test_train_command_end_to_end_and_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    cfg = write(tmp_path, TINY_DIGITS, name="quick.yaml")
    rc = main(["train", "--config", str(cfg), "--epochs", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert (out / "checkpoint.pt").is_file() and (out / "samples.png").is_file()
    assert (out / "metrics.json").is_file()
    assert re.search(r"^epoch 1/2 .*d_loss \d", text, re.M)
    assert re.search(r"^epoch 2/2 .*valid LL -?\d+\.\d+ ± \d+\.\d+", text, re.M)
    for grid in (r"released grid \(10 sigmas\)", r"fine grid \(101 sigmas\)"):
        number = r"-?\d+\.\d+ ± \d+\.\d+"
        assert re.search(rf"{grid}: sigma \S+  validation {number}  test {number}", text)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2

    # Without --resume an existing run is not overwritten.
    assert main(["train", "--config", str(cfg), "--epochs", "3", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err

    rc = main(["train", "--config", str(cfg), "--epochs", "3", "--out", str(out), "--resume"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "after epoch 2" in text
    assert re.search(r"^epoch 3/3 ", text, re.M) and not re.search(r"^epoch 2/", text, re.M)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 3

    # Resuming with a different model is refused, naming the key.
    cfg.write_text(cfg.read_text().replace("pieces: 5", "pieces: 4"))
    rc = main(["train", "--config", str(cfg), "--epochs", "4", "--out", str(out), "--resume"])
    assert rc == 2
    assert "discriminator.pieces" in capsys.readouterr().err


def test_zero_epochs_writes_the_checkpoint_it_names_and_a_damaged_one_is_refused(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    cfg = write(tmp_path, TINY_DIGITS, name="quick.yaml")
    assert main(["train", "--config", str(cfg), "--epochs", "0", "--out", str(out)]) == 0
    assert f"wrote {out / 'checkpoint.pt'}" in capsys.readouterr().err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 0

    (out / "checkpoint.pt").write_bytes(b"damaged")
    args = ["train", "--config", str(cfg), "--epochs", "1", "--out", str(out), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--resume: {out / 'checkpoint.pt'} cannot be read" in err and "Traceback" not in err


def test_train_evaluates_the_best_validation_epoch_and_tests_only_that(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A run whose validation score peaks before its end: best.pt, the final Table 1 numbers
    and the sample grid come from the peak epoch, and the test set is scored only there."""
    import gansearch.parzen as parzen
    from gansearch.data import load_dataset
    from gansearch.trainer import Trainer

    real = parzen.evaluate
    script = iter([1.0, 5.0, 3.0, 2.0])  # validation LL of epochs 1..4: the peak is epoch 2
    calls: list[tuple[bool, int, torch.Tensor]] = []

    def scripted(samples, valid, test=None, config=None, sigma=None):
        config = config or parzen.ParzenConfig()
        calls.append((test is not None, len(config.sigmas), torch.as_tensor(samples).clone()))
        result = real(samples, valid, test, config=config, sigma=sigma)
        return result if test is not None else dataclasses.replace(result, valid_mean=next(script))

    monkeypatch.setattr(parzen, "evaluate", scripted)
    out = tmp_path / "run"
    cfg = write(tmp_path, TINY_DIGITS, name="quick.yaml")
    args = ["train", "--config", str(cfg), "--epochs", "4", "--out", str(out)]
    assert main([*args, "--set", "eval.every=1"]) == 0
    text = capsys.readouterr().out
    assert "final evaluation of epoch 2 of 4, the best validation log-likelihood (5.00)" in text

    assert torch.load(out / "best.pt", weights_only=True)["epoch"] == 2
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 4
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert (final["epoch"], final["chosen_on"]) == (2, "valid_ll")
    assert set(final["grids"]) == {"released", "fine"}
    # Four training evaluations without the test set, then the final one on both grids.
    assert [(t, n) for t, n, _ in calls] == [(False, 10)] * 4 + [(True, 10), (True, 101)]
    best = Trainer.from_checkpoint(out / "best.pt", load_dataset("digits"))
    expected = best.sample(500)  # the final samples continue best.pt's evaluation stream
    assert torch.equal(calls[-1][2], expected) and torch.equal(calls[-2][2], expected)
    assert final["test_mean"] == pytest.approx(
        real(expected, best.dataset.valid, best.dataset.test).test_mean, rel=1e-12
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("eval.every", "expected KEY=VALUE"),
        ("optim.lr_x=0.1", "optim.lr_x: unknown key"),
        ("optim.k=[1", "not valid YAML"),
        ("optim.k=0", "optim.k: must be >= 1, got 0"),
    ],
)
def test_bad_set_overrides_are_refused_before_training(
    tmp_path: Path, capsys, value: str, message: str
) -> None:
    cfg = write(tmp_path, TINY_DIGITS, name="quick.yaml")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--set", value]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bad_config_fails_before_training(tmp_path: Path, capsys) -> None:
    cfg = write(tmp_path, "data: {name: digits}\ndiscriminator:\n  keep_probs: [1.5, 0.5, 0.5]\n")
    out = tmp_path / "run"
    rc = main(["train", "--config", str(cfg), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "x.yaml: discriminator.keep_probs[0]: must be in (0, 1], got 1.5" in err
    assert not out.exists()


def test_evaluate_and_curves_commands_on_kept_checkpoints(tmp_path: Path, capsys) -> None:
    """keep_checkpoints keeps every evaluated epoch; `evaluate` scores them on both grids with
    seeded samples, as a direct Parzen evaluation does; `curves` draws the run."""
    from gansearch.data import load_dataset
    from gansearch.parzen import FINE_SIGMAS, ParzenConfig, evaluate
    from gansearch.trainer import Trainer

    out = tmp_path / "run"
    cfg = write(tmp_path, TINY_DIGITS, name="quick.yaml")
    args = ["train", "--config", str(cfg), "--epochs", "4", "--out", str(out)]
    assert main([*args, "--set", "eval.keep_checkpoints=true"]) == 0
    kept = sorted(p.name for p in out.glob("epoch-*.pt"))
    assert kept == ["epoch-0002.pt", "epoch-0004.pt"]  # eval.every is 2
    capsys.readouterr()

    table = tmp_path / "eval.csv"
    checkpoint = out / "epoch-0002.pt"
    rc = main(["evaluate", str(checkpoint), "--seed", "3", "--no-quality", "--csv", str(table)])
    assert rc == 0
    assert "epoch 2  seed 3  released grid (10): sigma" in capsys.readouterr().out
    rows = pd.read_csv(table)
    assert list(rows["grid"]) == ["released", "fine"] and list(rows["grid_size"]) == [10, 101]
    digits = load_dataset("digits")
    trainer = Trainer.from_checkpoint(checkpoint, digits)
    samples = trainer.sample(500, rng=torch.Generator().manual_seed(3))
    grids = (trainer.config.eval.sigmas, FINE_SIGMAS)
    for row, sigmas in zip(rows.to_dict("records"), grids, strict=True):
        direct = evaluate(samples, digits.valid, digits.test, ParzenConfig(sigmas=sigmas))
        assert row["sigma"] == pytest.approx(direct.sigma)
        assert row["test_ll"] == pytest.approx(direct.test_mean, rel=1e-9)
        assert row["valid_ll"] == pytest.approx(direct.valid_mean, rel=1e-9)

    png = tmp_path / "curves.png"
    assert main(["curves", str(out), "--out", str(png), "--reference", "real data=20"]) == 0
    assert Image.open(png).size[0] > 400
    assert main(["curves", str(out), "--out", str(png), "--reference", "twenty"]) == 2
    assert "expected LABEL=NUMBER" in capsys.readouterr().err
    assert main(["curves", str(tmp_path), "--out", str(png)]) == 2
    assert main(["evaluate", str(tmp_path / "nope.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["evaluate", str(checkpoint), "--set", "generator.units=[8]"]) == 2
    assert "only eval.* settings" in capsys.readouterr().err
    rc = main(["evaluate", str(checkpoint), "--no-quality", "--set", "eval.final_samples=50"])
    assert rc == 0 and "epoch 2  seed 0  released grid (10)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- train --from


@pytest.mark.slow
def test_train_from_continues_a_trial_from_its_best_checkpoint_with_its_values(
    diverged_pbt_search: Path, tmp_path: Path, capsys
) -> None:
    from gansearch.data import load_dataset
    from gansearch.experiment import read_reports, read_results
    from gansearch.trainer import Trainer

    experiment = diverged_pbt_search / "pbt-diverge"
    table = read_results(experiment)
    # The member that diverged and went on from a copy: its values in force changed mid-run.
    row = table[table["trial_id"].str.endswith("_00001")].iloc[0]
    source = Path(row["best_checkpoint"]) / "trainer.pt"
    stored = torch.load(source, weights_only=True)
    out = tmp_path / "on"
    args = ["train", "--from", "pbt-diverge/00001", "--results-dir", str(diverged_pbt_search)]
    assert main([*args, "--epochs", str(stored["epoch"] + 2), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"continuing trial {row['trial_id']} of pbt-diverge from epoch {stored['epoch']}" in text
    assert re.search(rf"^epoch {stored['epoch'] + 1}/", text, re.M)  # the first epoch it trains

    # It started from the best validation checkpoint, with the values in force there (the ones
    # the trial reported at that epoch)...
    reports = read_reports(experiment)[row["trial_id"]]
    at = reports[reports["epoch"] == stored["epoch"]].iloc[-1]
    assert stored["epoch"] == int(row["best_epoch"])
    continued = torch.load(out / "checkpoint.pt", weights_only=True)
    for key in ("lr_d", "lr_g", "k"):
        assert continued["config"]["optim"][key] == pytest.approx(at[f"hp/optim.{key}"])
    # ... and its weights, optimiser and random streams: the run is exactly that checkpoint
    # trained on for two epochs.
    dataset = load_dataset("digits")
    expected = Trainer.from_checkpoint(source, dataset)
    expected.fit(stored["epoch"] + 2)
    for name, tensor in expected.state_dict()["generator"].items():
        assert torch.equal(continued["generator"][name], tensor), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["origin"]["trial_id"] == row["trial_id"]
    assert metrics["origin"]["epoch"] == stored["epoch"]
    assert "diverged at epoch 3" in metrics["origin"]["lineage"]
    assert metrics["final"]["epoch"] >= stored["epoch"]  # chosen among this run's epochs

    # Without a trial it continues the best one; the run can be resumed like any other.
    best = tmp_path / "best"
    assert main(["train", "--from", str(experiment), "--epochs", "9", "--out", str(best)]) == 0
    assert json.loads((best / "origin.json").read_text())["trial_id"] == table.iloc[0]["trial_id"]
    capsys.readouterr()
    assert main([*args, "--epochs", str(stored["epoch"] + 3), "--out", str(out), "--resume"]) == 0
    assert f"after epoch {stored['epoch'] + 2}" in capsys.readouterr().out


@pytest.mark.slow
def test_train_from_names_what_exists_when_the_experiment_or_trial_does_not(
    diverged_pbt_search: Path, tmp_path: Path, capsys
) -> None:
    results = ["--results-dir", str(diverged_pbt_search), "--out", str(tmp_path / "x")]
    assert main(["train", "--from", "nope", *results]) == 2
    err = capsys.readouterr().err
    assert "--from nope: no finished search" in err and "searches there: pbt-diverge" in err
    assert main(["train", "--from", "pbt-diverge/zzz", *results]) == 2
    err = capsys.readouterr().err
    assert "no trial 'zzz'" in err and "_00001 (finished)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()
