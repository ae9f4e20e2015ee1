"""`gansearch parzen` (gansearch.commands.parzen) as a user runs it: output, exit codes, messages,
and samples files and options crafted (or mistyped) to exhaust memory or to slip past the checks
refused before anything large is built."""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest
import scipy.io

from gansearch.cli import main
from gansearch.commands.parzen import load_samples
from gansearch.data import load_dataset
from gansearch.errors import UsageError
from gansearch.parzen import ParzenConfig, evaluate
from tests.support.guarded_cli import run_guarded


@pytest.fixture
def digit_samples(tmp_path):
    path = tmp_path / "samples.npy"
    np.save(path, load_dataset("digits").train[:500].reshape(-1, 8, 8))
    return path


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


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


def test_an_npy_header_that_promises_more_than_the_file_holds(tmp_path, capsys):
    path = tmp_path / "liar.npy"
    np.save(path, np.zeros((2, 64), dtype=np.float32))
    raw = path.read_bytes()
    header = raw[: raw.index(b"\n") + 1].replace(b"(2, 64)", b"(100000000, 64)")
    path.write_bytes(header + raw[len(header) :][:512])  # keep the header's padding intact
    assert main(["parzen", "--samples", str(path), "--dataset", "digits"]) == 2
    err = _err(capsys)
    assert "declares shape (100000000, 64) of float32 (25,600,000,000 bytes)" in err


@pytest.fixture
def samples(tmp_path):
    path = tmp_path / "samples.npy"
    np.save(path, load_dataset("digits").train[:200])
    return path


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--sigma", "inf"], "--sigma must be a positive, finite number, got inf"),
        (["--sigma", "nan"], "--sigma must be a positive, finite number, got nan"),
        (["--sigma", "1e-300"], "--sigma 1e-300 is out of range: use one in (1e-10, 1e10)"),
        (["--sigma", "1e-60"], "--sigma 1e-60 is out of range: use one in (1e-10, 1e10)"),
        (["--sigma", "1e-5"], "--sigma 1e-05: the log-likelihood is not finite"),
        (["--device", "bogus"], "device must be cpu, cuda, cuda:N, mps or auto, got 'bogus'"),
        (["--device", "meta"], "device must be cpu, cuda, cuda:N, mps or auto, got 'meta'"),
    ],
)
def test_impossible_parzen_options(samples, capsys, option, message):
    assert main(["parzen", "--samples", str(samples), "--dataset", "digits", *option]) == 2
    assert message in _err(capsys)


def test_samples_that_match_only_by_element_count_are_refused(tmp_path, capsys):
    path = tmp_path / "reshaped.npy"
    np.save(path, load_dataset("digits").train[:200].reshape(-1, 4, 16))
    assert main(["parzen", "--samples", str(path), "--dataset", "digits"]) == 2
    assert "samples have shape (200, 4, 16); expected (n, 64) or (n, 8, 8)" in _err(capsys)


# A device never ends and a FIFO never begins: refused for what they are, before reading.
@pytest.mark.timeout(10)  # the bug this guards against blocks forever in open()
def test_a_fifo_as_samples_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "samples.npy"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"samples\.npy: not a regular file \(a FIFO\)$"):
        load_samples(fifo)
    assert time.monotonic() - started < 1
    assert main(["parzen", "--samples", str(fifo), "--dataset", "digits"]) == 2
    assert f"gansearch parzen: error: {fifo}: not a regular file (a FIFO)" in _err(capsys)


def test_samples_through_a_link_are_read(samples, tmp_path, capsys):
    link = tmp_path / "link.npy"
    link.symlink_to(samples)
    assert main(["parzen", "--samples", str(link), "--dataset", "digits", "--sigma", "0.3"]) == 0
    assert "test log-likelihood:" in capsys.readouterr().out


@pytest.mark.slow  # one child process: importing the commands takes seconds
def test_a_device_or_fifo_as_samples_is_refused(tmp_path):
    fifo = tmp_path / "fifo.npy"
    os.mkfifo(fifo)
    kinds = {"/dev/zero": "a character device", str(fifo): "a FIFO"}
    calls = [["parzen", "--samples", path, "--dataset", "digits"] for path in kinds]
    for (path, kind), outcome in zip(
        kinds.items(), run_guarded(calls, ["gansearch.commands.parzen"]), strict=True
    ):
        assert outcome.code == 2, (path, outcome)
        assert f"gansearch parzen: error: {path}: not a regular file ({kind})" in outcome.err
        assert "Traceback" not in outcome.err
        assert outcome.seconds < 1, (path, outcome)
