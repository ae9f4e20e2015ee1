"""The Parzen-window estimator against brute force, closed forms, and the paper's protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from gansearch.data import load_dataset
from gansearch.errors import UsageError
from gansearch.parzen import (
    DEFAULT_SIGMAS,
    ParzenConfig,
    check_samples,
    evaluate,
    evaluate_folds,
    log_likelihoods,
    mean_and_se,
    select_sigma,
)


def brute_force(x: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """float64 reference: explicit differences, as the original Theano code, row by row."""
    x, centres = x.astype(np.float64), centres.astype(np.float64)
    out = np.empty(len(x))
    for i, row in enumerate(x):
        d2 = ((centres - row) ** 2).sum(axis=1)
        out[i] = logsumexp(-d2 / (2 * sigma**2)) - math.log(len(centres))
    return out - x.shape[1] * math.log(sigma * math.sqrt(2 * math.pi))


@pytest.fixture(scope="module")
def random_case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((120, 64)), rng.random((700, 64))


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_float32_within_1e3_nats_of_brute_force(random_case, sigma):
    x, centres = random_case
    got = log_likelihoods(x, centres, [sigma], precision="float32")[0]
    want = brute_force(x, centres, sigma)
    assert abs(got.mean() - want.mean()) < 1e-3
    np.testing.assert_allclose(got, want, atol=1e-2)


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_float64_within_1e9_relative_of_brute_force(random_case, sigma):
    x, centres = random_case
    got = log_likelihoods(x, centres, [sigma], precision="float64")[0]
    np.testing.assert_allclose(got, brute_force(x, centres, sigma), rtol=1e-9)


def test_real_mnist_float32_within_1e3_nats(mnist_dir):
    """784-d pixels, ||x||^2 near 100: where cancellation in ||x||^2 + ||mu||^2 - 2x.mu bites."""
    data = load_dataset("mnist", mnist_dir)
    centres, x = np.array(data.train[:1500]), np.array(data.test[:150])
    for sigma in (0.1, DEFAULT_SIGMAS[2]):
        got = log_likelihoods(x, centres, [sigma])[0]
        assert abs(got.mean() - brute_force(x, centres, sigma).mean()) < 1e-3


def test_blocks_give_the_same_answer_as_one_block(random_case):
    """Tiny memory bounds force many row and column blocks, combined by log-add-exp."""
    x, centres = random_case
    whole = log_likelihoods(x, centres, DEFAULT_SIGMAS, precision="float64")
    blocked = log_likelihoods(
        x, centres, DEFAULT_SIGMAS, precision="float64", max_block_bytes=2**16
    )
    assert 2**16 // (2 * 256 * 8) < len(centres)  # really more than one column block
    np.testing.assert_allclose(blocked, whole, rtol=1e-12)


def test_one_centre_is_the_gaussian_log_density():
    rng = np.random.default_rng(1)
    mu, x, sigma = rng.random((1, 10)), rng.random((5, 10)), 0.37
    exact = -((x - mu) ** 2).sum(1) / (2 * sigma**2) - 10 * math.log(sigma * math.sqrt(2 * math.pi))
    got = log_likelihoods(x, mu, [sigma], precision="float64")[0]
    np.testing.assert_allclose(got, exact, rtol=1e-13, atol=1e-12)


def test_far_points_do_not_underflow_to_minus_infinity():
    """Every kernel underflows in a naive exp; the shifted form still gives the exact value."""
    mu, x, sigma = np.zeros((3, 4)), np.full((2, 4), 10.0), 0.1
    got = log_likelihoods(x, mu, [sigma], precision="float32")[0]
    exact = -400 / (2 * sigma**2) - 4 * math.log(sigma * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(got, exact, rtol=1e-6)


def test_grid_search_picks_the_generating_sigma():
    """Validation points are samples plus N(0, 0.3^2) noise; the likelihood peaks at 0.3."""
    rng = np.random.default_rng(2)
    samples = rng.random((40, 30)) * 20.0  # far apart: each point is explained by its own centre
    valid = samples[rng.integers(0, 40, 400)] + rng.normal(0.0, 0.3, (400, 30))
    config = ParzenConfig(sigmas=(0.1, 0.2, 0.3, 0.45, 0.7), n_valid=None)
    sigma, scores, _ = select_sigma(samples, valid, config)
    assert sigma == 0.3
    reference = [brute_force(valid, samples, s).mean() for s in config.sigmas]
    np.testing.assert_allclose(scores, reference, atol=1e-3)


def test_evaluate_uses_only_the_first_n_valid_examples():
    rng = np.random.default_rng(3)
    samples, valid, test = rng.random((50, 8)), rng.random((30, 8)), rng.random((20, 8))
    result = evaluate(samples, valid, test, ParzenConfig(n_valid=10))
    first_ten = evaluate(samples, valid[:10], test, ParzenConfig(n_valid=None))
    assert result == first_ten
    assert (
        result.valid_mean != evaluate(samples, valid, test, ParzenConfig(n_valid=None)).valid_mean
    )


def test_evaluate_reports_test_at_chosen_sigma_with_standard_error():
    rng = np.random.default_rng(4)
    samples, valid, test = rng.random((80, 6)), rng.random((40, 6)), rng.random((60, 6))
    result = evaluate(samples, valid, test, ParzenConfig(precision="float64"))
    assert result.sigma == DEFAULT_SIGMAS[int(np.argmax(result.sigma_scores))]
    lls = brute_force(test, samples, result.sigma)
    assert result.test_mean == pytest.approx(lls.mean(), rel=1e-10)
    assert result.test_se == pytest.approx(lls.std() / math.sqrt(len(lls)), rel=1e-8)


def test_given_sigma_skips_the_grid():
    rng = np.random.default_rng(5)
    samples, valid = rng.random((30, 5)), rng.random((10, 5))
    result = evaluate(samples, valid, None, sigma=0.25)
    assert result.sigma == 0.25 and result.test_mean is None and len(result.sigma_scores) == 1
    assert result.valid_mean == pytest.approx(brute_force(valid, samples, 0.25).mean(), abs=1e-4)


def test_mean_and_se_is_population_std_over_sqrt_n():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    assert mean_and_se(values) == (3.5, pytest.approx(np.std(values) / 2.0))


def test_folds_standard_error_is_across_folds():
    rng = np.random.default_rng(6)
    folds = [(rng.random((30, 4)), rng.random((10, 4)), rng.random((15, 4))) for _ in range(3)]
    result = evaluate_folds(folds)
    per_fold = np.array([evaluate(*fold).test_mean for fold in folds])
    assert result.test_mean == pytest.approx(per_fold.mean())
    assert result.test_se == pytest.approx(per_fold.std() / math.sqrt(3))
    assert evaluate_folds(iter(folds[:1])).test_mean == pytest.approx(per_fold[0])
    with pytest.raises(UsageError, match="at least one fold"):
        evaluate_folds([])


@pytest.mark.slow
def test_paper_protocol_on_real_mnist_training_images(mnist_dir):
    """10,000 real training images as 'samples' score about 241 nats (measured independently)."""
    data = load_dataset("mnist", mnist_dir)
    result = evaluate(data.train[:10000], data.valid, data.test)
    assert result.sigma == pytest.approx(0.16681, abs=1e-4)
    assert result.test_mean == pytest.approx(241.19, abs=0.05)
    assert result.test_se == pytest.approx(2.13, abs=0.01)


def test_check_samples_accepts_images_and_flattens():
    images = np.random.default_rng(7).random((5, 1, 8, 8))
    assert check_samples(images, (8, 8), "s.npy").shape == (5, 64)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((5, 63)), r"shape \(5, 63\)"),
        (np.zeros(64), "shape"),
        (np.zeros((0, 64)), "shape"),
        (np.full((5, 64), np.nan), "NaN or Inf"),
        (np.full((5, 64), 255.0), r"span \[255, 255\]"),
        (np.full((5, 64), -0.5), "expected pixels in"),
        (np.array([["a"] * 64]), "dtype"),
    ],
)
def test_check_samples_rejects_bad_samples_naming_the_source(array, message):
    with pytest.raises(UsageError, match=message) as info:
        check_samples(array, (8, 8), "gen.npy")
    assert str(info.value).startswith("gen.npy")


@pytest.mark.parametrize(
    "kwargs", [{"sigmas": ()}, {"sigmas": (0.0,)}, {"n_valid": 0}, {"precision": "half"}]
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(UsageError):
        ParzenConfig(**kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(random_case):
    x, centres = random_case
    cpu = log_likelihoods(x, centres, DEFAULT_SIGMAS, precision="float64")
    gpu = log_likelihoods(x, centres, DEFAULT_SIGMAS, precision="float64", device="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-10)


def test_cuda_requested_without_cuda_is_a_clear_error(random_case):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(UsageError, match="CUDA is not available"):
        log_likelihoods(*random_case, [0.2], device="cuda")
