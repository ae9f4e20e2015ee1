"""`gansearch classifier` (gansearch.commands.classifier): the quality classifier's accuracy and
where it is cached."""

from __future__ import annotations

from gansearch.cli import main


def test_classifier_command_prints_accuracy_and_cache_path(digits_scorer, capsys):
    assert main(["classifier", "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {digits_scorer.test_accuracy:.2%} on 300 test images" in out
    assert "cached)" in out and f"cache: {digits_scorer.path}" in out
    assert main(["classifier", "--dataset", "tfd"]) == 2
    assert "tfd has no class labels" in capsys.readouterr().err
