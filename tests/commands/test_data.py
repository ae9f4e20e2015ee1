"""`gansearch data` (gansearch.commands.data): the splits of a data set."""

from __future__ import annotations

from gansearch.cli import main


def test_data_command_reports_the_splits(capsys):
    assert main(["data", "digits"]) == 0
    out = capsys.readouterr().out
    assert "train   1197 x 64" in out and "test     300 x 64" in out
