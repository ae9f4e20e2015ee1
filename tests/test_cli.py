"""`gansearch parzen` and `gansearch data` as a user runs them: output, exit codes, messages."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from gansearch.cli import main
from gansearch.data import load_dataset
from gansearch.parzen import ParzenConfig, evaluate


@pytest.fixture
def digit_samples(tmp_path):
    path = tmp_path / "samples.npy"
    np.save(path, load_dataset("digits").train[:500].reshape(-1, 8, 8))
    return path


def test_parzen_prints_sigma_and_both_log_likelihoods(digit_samples, capsys):
    assert main(["parzen", "--samples", str(digit_samples), "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    data = load_dataset("digits")
    want = evaluate(data.train[:500], data.valid, data.test, ParzenConfig())
    assert f"sigma: {want.sigma:.4f}" in out
    assert f"validation log-likelihood: {want.valid_mean:.2f} ± {want.valid_se:.2f}" in out
    assert f"test log-likelihood: {want.test_mean:.2f} ± {want.test_se:.2f}" in out
    assert len(re.findall(r"sigma \d\.\d{4}: ", out)) == 10 and out.count("<- chosen") == 1


def test_parzen_with_fixed_sigma_and_json(digit_samples, capsys):
    args = ["parzen", "--samples", str(digit_samples), "--dataset", "digits", "--sigma", "0.3"]
    assert main([*args, "--json", "--n-valid", "0"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    data = load_dataset("digits")
    want = evaluate(data.train[:500], data.valid, data.test, ParzenConfig(n_valid=None), sigma=0.3)
    assert result["sigma"] == 0.3
    assert result["test_mean"] == pytest.approx(want.test_mean)
    assert result["valid_mean"] == pytest.approx(want.valid_mean)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"this is not numpy", "not a readable .npy array"),
        (np.zeros((4, 10)), r"samples have shape \(4, 10\); expected \(n, 64\)"),
        (np.full((4, 64), 2.0), r"sample values span \[2, 2\]"),
        (np.full((4, 64), np.inf), "NaN or Inf"),
    ],
)
def test_parzen_rejects_bad_samples_with_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    assert main(["parzen", "--samples", str(path), "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"gansearch parzen: error: {re.escape(str(path))}: .*{message}", err)
    assert "Traceback" not in err


def test_parzen_missing_data_is_a_clear_error(digit_samples, tmp_path, capsys):
    args = ["parzen", "--samples", str(digit_samples), "--dataset", "tfd"]
    assert main([*args, "--data-dir", str(tmp_path)]) == 2
    assert "TFD_48x48.mat not found in" in capsys.readouterr().err


def test_parzen_tfd_reports_mean_and_error_across_folds(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folds = np.stack([rng.permutation(np.repeat([0, 1, 2, 3], 30)) for _ in range(5)], axis=1)
    mat = {"images": rng.integers(0, 256, (120, 48, 48), dtype=np.uint8), "folds": folds}
    scipy.io.savemat(str(tmp_path / "TFD_48x48.mat"), mat)
    samples = tmp_path / "s.npy"
    np.save(samples, rng.random((50, 48, 48)).astype(np.float32))
    args = ["parzen", "--samples", str(samples), "--dataset", "tfd", "--data-dir", str(tmp_path)]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    means = np.array([r["test_mean"] for r in summary["results"]])
    assert [r["fold"] for r in summary["results"]] == [0, 1, 2, 3, 4]
    assert summary["test_mean"] == pytest.approx(means.mean())
    assert summary["test_se"] == pytest.approx(means.std() / np.sqrt(5))


def test_data_command_reports_the_splits(capsys):
    assert main(["data", "digits"]) == 0
    out = capsys.readouterr().out
    assert "train   1197 x 64" in out and "test     300 x 64" in out


@pytest.mark.slow
def test_console_script_is_installed():
    script = shutil.which("gansearch") or pytest.fail("the gansearch console script is missing")
    result = subprocess.run([script, "parzen", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--samples" in result.stdout
    module = subprocess.run(
        [sys.executable, "-m", "gansearch.cli", "--help"], capture_output=True, text=True
    )
    assert module.returncode == 0 and "parzen" in module.stdout
