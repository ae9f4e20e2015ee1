"""`gansearch report` (gansearch.commands.report): what it says about the experiment it is
asked for before any evaluation starts."""

from __future__ import annotations

import os

from gansearch.cli import main
from gansearch.experiment import experiment_lock


def test_report_beside_a_running_search_names_the_search_that_holds_it(tmp_path, capsys):
    running = tmp_path / "busy"  # a search's directory before its results exist
    running.mkdir()
    with experiment_lock(running):
        code = main(["report", "--results-dir", str(tmp_path), "--experiment", "busy"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{running} is in use by another gansearch process (PID {os.getpid()}" in err
    assert "no finished search" not in err
    # Nobody holds it any more: what is missing is said.
    assert main(["report", "--results-dir", str(tmp_path), "--experiment", "busy"]) == 2
    assert "--experiment busy: no finished search" in capsys.readouterr().err
    assert sorted(p.name for p in running.iterdir()) == []  # the lock file went with the lock
