"""The quality classifier and its metrics (gansearch.quality), and its cache.

The MNIST classifier is trained once per session (the `mnist_scorer` fixture, about 90 s); every
other test uses the bundled digits or hand-made numbers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from gansearch import quality
from gansearch.data import load_dataset
from gansearch.errors import DataError
from gansearch.quality import (
    class_coverage,
    classifier_path,
    data_fingerprint,
    frechet_distance,
    load_scorer,
    read_scorer,
)

# --------------------------------------------------------------------------- MNIST


def test_mnist_classifier_reaches_99_percent_test_accuracy(mnist_scorer):
    assert mnist_scorer.test_accuracy >= 0.99


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_dataset("mnist", mnist_dir)


def test_mnist_fid_is_small_for_held_out_real_images_and_large_for_noise(mnist_scorer, mnist):
    real = mnist_scorer.score(mnist.valid)  # 10,000 training images the classifier never saw
    assert real.n_samples == 10_000 and real.fid < 5
    noise = np.random.default_rng(0).random((10_000, 784), dtype=np.float32)
    assert mnist_scorer.score(noise).fid > 100


def test_mnist_coverage_of_real_data_and_of_one_repeated_image(mnist_scorer, mnist):
    real = mnist_scorer.score(mnist.valid)
    assert (real.classes_covered, real.n_classes) == (10, 10)
    assert real.class_kl < 0.01 and real.confidence > 0.97
    one = mnist_scorer.score(np.repeat(mnist.test[:1], 1000, axis=0))
    assert (one.classes_covered, one.n_classes) == (1, 10)
    shown = int(np.argmax(one.histogram))  # every copy gets the same class: KL = -log(its share)
    assert one.class_kl == pytest.approx(-math.log(mnist_scorer.reference_histogram[shown]))


# --------------------------------------------------------------------------- the metrics


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance(m1, np.diag(v1), m2, np.diag(v2))
    assert got == pytest.approx(want, rel=1e-9)
    assert frechet_distance(m1, np.diag(v1), m1, np.diag(v1)) == pytest.approx(0, abs=1e-9)
    # A full covariance and its scaled copy: tr(C + aC - 2 sqrt(a) C) = (1 - sqrt a)^2 tr C.
    a = rng.normal(size=(6, 6))
    cov = a @ a.T
    assert frechet_distance(m1, cov, m1, 4 * cov) == pytest.approx(np.trace(cov), rel=1e-6)


def test_class_coverage_counts_classes_with_a_tenth_of_their_share():
    uniform = np.full(10, 0.1)
    assert class_coverage(uniform, uniform) == (10, pytest.approx(0.0))
    one = np.eye(10)[3]
    covered, kl = class_coverage(one, uniform)
    assert covered == 1 and kl == pytest.approx(math.log(10))
    # A tenth of a 0.1 share is 0.01: 0.011 is covered, 0.009 is not.
    hist = np.array([0.011, 0.009, *[0.98 / 8] * 8])
    assert class_coverage(hist, uniform)[0] == 9
    # A class absent from the reference is never counted, present in the samples or not.
    ref = np.array([0.5, 0.5, 0.0])
    assert class_coverage(np.array([0.5, 0.5, 0.0]), ref) == (2, pytest.approx(0.0))
    assert class_coverage(np.array([1.0, 0.0, 0.0]), ref) == (1, pytest.approx(math.log(2)))


# --------------------------------------------------------------------------- the cache


def test_a_second_load_reads_the_cache_without_training(digits_scorer, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained again although the classifier is cached")

    monkeypatch.setattr(quality, "train_classifier", refuse)
    again = load_scorer(load_dataset("digits"))
    assert again.path == digits_scorer.path and digits_scorer.path.exists()
    assert again.test_accuracy == digits_scorer.test_accuracy >= 0.9
    samples = load_dataset("digits").valid
    assert again.score(samples) == digits_scorer.score(samples)


def test_changed_data_get_their_own_cache_entry(digits_scorer):
    digits = load_dataset("digits")
    train = np.array(digits.train)
    train[0, 0] = 1.0 - train[0, 0]  # one pixel
    changed = replace(digits, train=train)
    assert data_fingerprint(changed) != data_fingerprint(digits)
    path = classifier_path(digits_scorer.path.parents[1], "digits", data_fingerprint(changed))
    assert path != digits_scorer.path and not path.exists()
    with pytest.raises(DataError, match="gansearch classifier --dataset digits"):
        load_scorer(changed, train=False)  # the cached classifier is not reused


def test_a_corrupt_cache_file_is_replaced_with_a_message(digits_scorer, tmp_path, monkeypatch):
    digits = load_dataset("digits")
    path = classifier_path(tmp_path, "digits", digits_scorer.fingerprint)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a classifier")
    trained = []

    def fake_train(dataset, config, say, fingerprint):
        trained.append(fingerprint)
        return replace(digits_scorer, path=None)

    monkeypatch.setattr(quality, "train_classifier", fake_train)
    said: list[str] = []
    scorer = load_scorer(digits, cache=tmp_path, say=said.append)
    assert trained == [digits_scorer.fingerprint] and scorer.path == path
    assert any("cannot read classifier" in s and "training a new one" in s for s in said)
    assert read_scorer(path).test_accuracy == digits_scorer.test_accuracy  # replaced


def test_data_without_labels_has_no_classifier():
    digits = load_dataset("digits")
    with pytest.raises(DataError, match="no class labels"):
        load_scorer(replace(digits, train_labels=None, test_labels=None))


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
