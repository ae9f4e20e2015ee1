"""`gansearch evaluate` (gansearch.commands.evaluate) on the checkpoints a `gansearch train` run
kept, scored as a direct Parzen evaluation scores them, and `gansearch curves` of that run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from gansearch.cli import main
from tests.support.train_configs import TINY_DIGITS, write


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
