"""`gansearch curves` (gansearch.commands.curves): a pbt population with its copies and a
divergence (the search is conftest's `diverged_pbt_search`), and evaluation CSVs as references."""

from __future__ import annotations

from pathlib import Path

import pytest

from gansearch.experiment import read_results


@pytest.mark.slow
def test_curves_draw_a_population_with_its_copies_and_divergence(
    diverged_pbt_search: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from gansearch.cli import main
    from gansearch.commands.curves import search_segments

    experiment = diverged_pbt_search / "pbt-diverge"
    curves = search_segments(experiment, "pbt")
    assert len(curves) == 4
    (label,) = [name for name in curves if name.endswith("00001")]
    diverged, replacement, *_ = curves[label]
    assert diverged.diverged_at == 3 and [p[0] for p in diverged.points] == [1, 2]
    donor, epoch = replacement.copied_from
    assert donor in curves and donor != label and replacement.points[0][0] > epoch
    lineage = read_results(experiment).set_index("trial_id")["lineage"]
    copies = sum(len(s) - 1 for s in curves.values())
    assert copies == sum(len(v.split("; ")) for v in lineage if v)  # one segment per copy

    out = tmp_path / "population.png"
    assert main(["curves", str(experiment), "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 600


def test_an_evaluate_csv_is_drawn_from_its_released_rows_averaged_over_seeds(
    tmp_path: Path,
) -> None:
    import pandas as pd
    from PIL import Image

    from gansearch.cli import main
    from gansearch.commands.curves import evaluation_history

    rows = [
        {
            "epoch": 10,
            "seed": 0,
            "grid": "released",
            "valid_ll": 100.0,
            "valid_se": 2.0,
            "fid": 50.0,
        },
        {
            "epoch": 10,
            "seed": 1,
            "grid": "released",
            "valid_ll": 110.0,
            "valid_se": 4.0,
            "fid": 40.0,
        },
        {"epoch": 10, "seed": 0, "grid": "fine", "valid_ll": 999.0, "valid_se": 1.0, "fid": 50.0},
        {
            "epoch": 20,
            "seed": 0,
            "grid": "released",
            "valid_ll": 130.0,
            "valid_se": 3.0,
            "fid": 30.0,
        },
    ]
    path = tmp_path / "evaluation.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    history = evaluation_history(path)
    assert [(m.epoch, m.valid_ll, m.valid_se, m.fid) for m in history] == [
        (10, 105.0, 3.0, 45.0),
        (20, 130.0, 3.0, 30.0),
    ]
    out = tmp_path / "curves.png"
    assert main(["curves", str(path), "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 600


def test_a_csv_that_is_not_an_evaluation_is_refused(tmp_path: Path, capsys) -> None:
    from gansearch.cli import main

    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    assert main(["curves", str(path), "--out", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not a gansearch evaluate CSV (no column epoch, valid_ll)" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_continued_run_is_drawn_from_the_epoch_it_continued_from(
    diverged_pbt_search: Path, tmp_path: Path, capsys
) -> None:
    import torch

    from gansearch.cli import main
    from gansearch.commands.curves import train_history

    experiment = diverged_pbt_search / "pbt-diverge"
    epoch = int(read_results(experiment).iloc[0]["best_epoch"])
    out = tmp_path / "on"
    assert (
        main(["train", "--from", str(experiment), "--epochs", str(epoch + 2), "--out", str(out)])
        == 0
    )
    # Its checkpoint holds the trial's whole history; the search draws that part itself.
    assert torch.load(out / "checkpoint.pt", weights_only=True)["history"][0]["epoch"] == 1
    assert [m.epoch for m in train_history(out)] == [epoch, epoch + 1, epoch + 2]

    figure = ["curves", str(experiment), str(out), "--out", str(tmp_path / "c.png")]
    assert main([*figure, "--ll-limits", "-50", "100"]) == 0
    capsys.readouterr()
    assert main([*figure, "--ll-limits", "100", "-50"]) == 2
    assert "--ll-limits 100 -50: LOW must be below HIGH" in capsys.readouterr().err
