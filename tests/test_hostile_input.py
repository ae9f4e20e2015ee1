"""Bounded inputs: files and options crafted (or mistyped) to exhaust memory or to slip past the
checks get a clear message, a non-zero exit and no traceback, before anything large is built."""

from __future__ import annotations

import gzip
import re
import time

import numpy as np
import pytest

from gansearch.cli import main
from gansearch.data import idx, load_dataset
from gansearch.errors import ConfigError, DataError
from gansearch.schema import MAX_MESSAGE, read_yaml

# 493 bytes that expand to 10**9 strings: each level repeats the one above ten times.
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# --------------------------------------------------------------------------- YAML


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        read_yaml(path)
    space = tmp_path / "space.yaml"
    space.write_text("name: bomb\n" + BOMB.replace("a: &a", "params: &a", 1))
    assert main(["run", "--space", str(space), "--results-dir", str(tmp_path)]) == 2
    config = tmp_path / "train.yaml"
    config.write_text(BOMB)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = _err(capsys)
    assert err.count("expands to more than 100,000 values") == 2
    assert time.monotonic() - started < 10 and len(err) < 2000


def test_long_values_are_cut_short_in_messages(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(f"name: '{'x/' * 50_000}'\ndataset: {{name: digits}}\n")
    assert main(["run", "--space", str(space), "--results-dir", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "name: must be a name of letters" in err and "characters in all" in err
    assert len(err) < MAX_MESSAGE + 200


def test_a_yaml_file_over_a_mebibyte_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="too large for a configuration"):
        read_yaml(path)


@pytest.mark.parametrize("content", ["", "null\n", "{}\n", "# only a comment\n"])
def test_an_empty_training_config_is_an_error_not_the_papers(tmp_path, capsys, content):
    config = tmp_path / "empty.yaml"
    config.write_text(content)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert f"{config}: is empty" in _err(capsys)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- samples and options


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


@pytest.mark.parametrize("device", ["bogus", "meta"])
def test_train_and_evaluate_refuse_unknown_devices(tmp_path, capsys, device):
    args = ["train", "--config", "configs/digits_quick.yaml", "--out", str(tmp_path / "o")]
    assert main([*args, "--device", device]) == 2
    assert "device: must be cpu, cuda, cuda:N, mps or auto" in _err(capsys)


# --------------------------------------------------------------------------- data files


def test_a_gzip_that_inflates_past_the_standard_size_is_refused(tmp_path, mnist_dir):
    found = idx.find_files(idx.MNIST, mnist_dir)
    for path in found.values():
        (tmp_path / path.name).symlink_to(path)
    labels = found["test_labels"]
    bomb = tmp_path / labels.name
    bomb.unlink()
    bomb.write_bytes(gzip.compress(b"\0" * (64 << 20)))  # 64 MiB of zeros in about 64 KiB
    assert bomb.stat().st_size < 200_000
    with pytest.raises(DataError, match=re.escape(f"{bomb}: inflates to more than the 10,008")):
        load_dataset("mnist", tmp_path)


# --------------------------------------------------------------------------- unwritable places


def test_a_results_directory_that_cannot_be_written_fails_before_anything_starts(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    space = "tests/fixtures/small_space.yaml"
    started = time.monotonic()
    assert main(["run", "--space", space, "--results-dir", str(blocker / "runs")]) == 2
    err = _err(capsys)
    assert f"{blocker / 'runs' / 'small'}: cannot write there" in err
    assert time.monotonic() - started < 30  # no Ray, no MLflow store was started


@pytest.mark.slow
def test_an_unwritable_cache_trains_the_classifier_and_says_it_was_not_kept(tmp_path, monkeypatch):
    from gansearch.quality import load_scorer

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    said: list[str] = []
    scorer = load_scorer(load_dataset("digits"), cache=blocker / "cache", say=said.append)
    assert scorer.test_accuracy > 0.8
    assert any("not cached:" in line and "cannot be written" in line for line in said), said
    assert blocker.read_text() == "not a directory"
