"""`gansearch schedule` (gansearch.commands.schedule) on a digits pbt search: a trial's networks
traced back through the copies it made, and a `train --from` run's own epochs added last."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gansearch.cli import main
from gansearch.experiment import read_results


def _table(text: str) -> list[list[str]]:
    """The Markdown table's body rows, as cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.slow
def test_schedule_traces_a_trial_back_through_its_copies_and_adds_a_continued_run(
    diverged_pbt_search: Path, tmp_path: Path, capsys
) -> None:
    experiment = diverged_pbt_search / "pbt-diverge"
    row = read_results(experiment).set_index("trial_id").filter(like="_00001", axis=0).iloc[0]
    stored = torch.load(Path(row["best_checkpoint"]) / "trainer.pt", weights_only=True)
    history = {m["epoch"]: m for m in stored["history"]}

    assert main(["schedule", str(experiment / "00001")]) == 0
    rows = _table(capsys.readouterr().out)
    # The stretches cover epochs 1 to the checkpoint's without a gap, the last trained by the
    # trial itself from the copy that replaced its diverged state.
    spans = [tuple(int(e) for e in r[0].split("-")) for r in rows]
    assert spans[0][0] == 1 and spans[-1][1] == stored["epoch"]
    assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:], strict=False))
    assert rows[-1][1] == "00001" and rows[-1][2].endswith(f"epoch {spans[-1][0] - 1}")
    assert len(rows) >= 2 and rows[0][2] == "scratch"
    # The in-force learning rate at the stretch's first epoch is the checkpoint history's.
    assert rows[-1][3].split(" -> ")[0] == f"{history[spans[-1][0]]['lr_d']:.4g}"

    # Trained on with one value changed (as a user tests a schedule on a winner): the last
    # stretch is the run's own, with the trial's values except the one --set changed.
    out = tmp_path / "on"
    train = ["train", "--from", str(experiment / "00001"), "--out", str(out)]
    changed = ["--set", "optim.lr_g=0.0123"]
    assert main([*train, "--epochs", str(stored["epoch"] + 2), *changed]) == 0
    assert "optim.lr_g: " in capsys.readouterr().out
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["config"]["optim"]["lr_g"] == pytest.approx(0.0123)
    assert main(["schedule", str(out)]) == 0
    text = capsys.readouterr().out
    continued = _table(text)
    assert continued[:-1] == rows
    first, last = stored["epoch"] + 1, stored["epoch"] + 2
    assert continued[-1][:3] == [f"{first}-{last}", "on", f"00001 epoch {stored['epoch']}"]
    header = [c.strip() for c in text.splitlines()[1].strip("|").split("|")]
    column = header.index("optim.lr_g")
    assert continued[-1][column] == "0.0123" and rows[-1][column] != "0.0123"
    untouched = [i for i in range(6, len(header)) if i != column]
    assert [continued[-1][i] for i in untouched] == [rows[-1][i] for i in untouched]


@pytest.mark.slow
def test_schedule_names_what_exists_when_the_source_does_not(
    diverged_pbt_search: Path, tmp_path: Path, capsys
) -> None:
    assert main(["schedule", "nope", "--results-dir", str(diverged_pbt_search)]) == 2
    err = capsys.readouterr().err
    assert "schedule nope: no finished search" in err and "searches there: pbt-diverge" in err
    (tmp_path / "origin.json").write_text("{}")
    assert main(["schedule", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'origin.json'} is not a gansearch train origin" in err
    assert "Traceback" not in err
