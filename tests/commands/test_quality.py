"""`gansearch quality` (gansearch.commands.quality) on samples: FID, coverage and confidence as
the classifier scores them, with Parzen on request, and bad input refused in one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gansearch.cli import main
from gansearch.data import load_dataset
from gansearch.parzen import ParzenConfig, evaluate


@pytest.fixture
def digit_samples(tmp_path):
    path = tmp_path / "samples.npy"
    np.save(path, load_dataset("digits").valid.reshape(-1, 8, 8))
    return path


def test_quality_command_prints_fid_coverage_and_confidence(digits_scorer, digit_samples, capsys):
    assert main(["quality", "--samples", str(digit_samples), "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    want = digits_scorer.score(load_dataset("digits").valid)
    assert f"FID: {want.fid:.2f}" in out
    assert f"classes covered: 10 of 10 (KL {want.class_kl:.4f}" in out
    assert f"confidence: {want.confidence:.4f}" in out
    assert "class histogram: 0: " in out


def test_quality_command_json_with_parzen(digits_scorer, digit_samples, capsys):
    args = ["quality", "--samples", str(digit_samples), "--dataset", "digits"]
    assert main([*args, "--parzen", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    data = load_dataset("digits")
    want = digits_scorer.score(data.valid)
    assert result["quality"]["fid"] == pytest.approx(want.fid)
    assert result["quality"]["classes_covered"] == 10
    assert result["quality"]["histogram"] == pytest.approx(list(want.histogram))
    parzen = evaluate(data.valid, data.valid, data.test, ParzenConfig())
    assert result["parzen"]["test_mean"] == pytest.approx(parzen.test_mean)
    assert result["parzen"]["sigma"] == parzen.sigma


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, [], "no such file"),
        (b"this is not numpy", [], "not a readable .npy array"),
        (np.zeros((4, 10)), [], r"samples have shape \(4, 10\); expected \(n, 64\)"),
        (np.full((4, 64), 1.5), [], r"sample values span \[1.5, 1.5\]"),
        (np.zeros((4, 64)), ["--dataset", "tfd"], "tfd has no class labels"),
        (np.zeros((4, 64)), ["--n-clusters", "5"], "go with --references"),
    ],
)
def test_quality_command_rejects_bad_input_with_one_line(tmp_path, capsys, content, extra, message):
    path = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    args = ["quality", "--samples", str(path), "--dataset", "digits", *extra]
    if "--dataset" in extra:
        args = ["quality", "--samples", str(path), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("gansearch quality: error: ")
    assert re.search(message, err), err
