"""`gansearch train` (gansearch.commands.train) end to end on digits: resume, zero epochs, the
best validation epoch evaluated, overrides and configurations refused before training, and
`train --from` a search's trial."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from gansearch.cli import main
from tests.support.train_configs import TINY_DIGITS, write


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
    # --set may change what pbt perturbs, not the networks' shape.
    assert main(["train", "--from", "pbt-diverge", "--set", "generator.units=[8,8]", *results]) == 2
    err = capsys.readouterr().err
    assert "--set generator.units: --from pbt-diverge continues a trained network" in err
    assert "optim.momentum_end" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()
