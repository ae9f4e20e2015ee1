"""The progress lines of a running search, and where a resumed one starts from."""

from __future__ import annotations

import io
import math
from pathlib import Path

from gansearch.experiment import append_report, append_trial_end
from gansearch.progress import ProgressPrinter
from gansearch.space import load_space

SMALL = Path(__file__).parent / "fixtures" / "small_space.yaml"


def test_a_resumed_search_shows_the_best_it_had_found(tmp_path):
    space = load_space(SMALL)
    experiment = tmp_path / "small"
    experiment.mkdir()
    for epoch, value in ((1, 3.0), (2, 7.5)):
        append_report(experiment, "a", {"epoch": epoch, "valid_ll": value})
    append_trial_end(experiment, "a", "finished", "", 1.0)
    out = io.StringIO()
    progress = ProgressPrinter(space, out=out)
    progress.resume_from(experiment)
    progress.trial_result("b", {"epoch": 1, "valid_ll": 1.0})
    progress.tick(force=True)
    line = out.getvalue().strip().splitlines()[-1]
    assert "1 finished" in line and "best valid_ll 7.50 (trial a)" in line
    assert progress.records["a"].last_epoch == 2 and not math.isnan(progress.records["a"].best)


def test_a_pbt_divergence_is_said_and_the_ended_trial_gives_its_wall_time():
    space = load_space(Path(__file__).parent / "fixtures" / "pbt_space.yaml")
    out = io.StringIO()
    progress = ProgressPrinter(space, out=out)
    progress.trial_started("a")
    progress.trial_result("a", {"epoch": 3, "diverged": 1, "error": "NaN in D's loss"})
    assert "trial a diverged at epoch 3 (NaN in D's loss): it goes on from a copy" in out.getvalue()
    wall = progress.trial_ended("a", "finished", "")
    assert wall is not None and wall >= 0
    assert progress.trial_ended("never-started", "not started", "why") is None
