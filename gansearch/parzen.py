"""Gaussian Parzen-window log-likelihood, exactly as the paper's Table 1 measured it.

log p(x) = logmeanexp_i(-||x - mu_i||^2 / (2 sigma^2)) - d log(sigma sqrt(2 pi)), with the
centres mu_i the generator's samples. sigma is chosen on a validation set over a grid (the
released script: 10 values of logspace(-1, 0) on the first 1,000 validation examples), then the
test set is scored at that sigma; numbers are means with standard errors std / sqrt(n).

Speed: squared distances come from one matrix product per block (||x||^2 + ||mu||^2 - 2 x.mu,
after centring both sets on the samples' mean to limit cancellation) and are reused for every
sigma of the grid; per sigma only one scaled exponential and a row sum remain, shifted by the row's
smallest distance so nothing overflows. Memory: the two block buffers use at most
`max_block_bytes` (default 256 MiB) beyond the inputs; blocks over the centres are combined with
log-add-exp, so any number of samples fits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from gansearch.devices import DEVICE_PATTERN, DEVICE_RULE, resolve_device
from gansearch.errors import UsageError

# The released parzen_ll.py grid: 10 values from 0.1 to 1, 29 % apart.
DEFAULT_SIGMAS: tuple[float, ...] = tuple(float(s) for s in np.logspace(-1.0, 0.0, 10))
# The same range at ten times the resolution (101 values, 2.3 % apart). The paper says only that
# sigma was cross-validated; on a trained MNIST GAN the coarse grid alone costs ~10 nats.
FINE_SIGMAS: tuple[float, ...] = tuple(float(s) for s in np.logspace(-1.0, 0.0, 101))
Precision = Literal["float32", "float64"]
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ParzenConfig:
    """How to run the estimator; the defaults are the paper's protocol."""

    sigmas: tuple[float, ...] = DEFAULT_SIGMAS
    n_valid: int | None = 1000  # first n validation examples for choosing sigma; None = all
    precision: Precision = "float32"  # float64 for a reference-grade result (about 2x slower)
    device: str = "cpu"
    max_block_bytes: int = 256 * 2**20

    def __post_init__(self) -> None:
        if not self.sigmas or any(not (s > 0 and math.isfinite(s)) for s in self.sigmas):
            raise UsageError(f"sigmas must be positive and finite, got {self.sigmas}")
        if self.n_valid is not None and self.n_valid < 1:
            raise UsageError(f"n_valid must be at least 1, got {self.n_valid}")
        if self.precision not in _DTYPES:
            raise UsageError(f"precision must be float32 or float64, got {self.precision!r}")
        if not isinstance(self.device, str) or re.fullmatch(DEVICE_PATTERN, self.device) is None:
            raise UsageError(f"device must be {DEVICE_RULE}, got {self.device!r}")
        if self.max_block_bytes < 2**16:
            raise UsageError(f"max_block_bytes must be at least 65536, got {self.max_block_bytes}")


@dataclass(frozen=True)
class ParzenResult:
    """Chosen sigma, validation and (optionally) test mean log-likelihood with standard errors."""

    sigma: float
    valid_mean: float
    valid_se: float
    test_mean: float | None
    test_se: float | None
    sigma_scores: tuple[float, ...] = field(default=())  # mean validation LL per grid sigma
    n_samples: int = 0


@dataclass(frozen=True)
class FoldsResult:
    """TFD protocol: one result per fold, mean test LL across folds, standard error across folds."""

    folds: tuple[ParzenResult, ...]
    test_mean: float
    test_se: float


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error std / sqrt(n) (population std, as the released script)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # -inf values: the caller reports a non-finite result
        return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def _as_tensor(array: np.ndarray | torch.Tensor, dtype: torch.dtype, device: torch.device):
    if isinstance(array, torch.Tensor):
        return array.detach().to(device=device, dtype=dtype)
    array = np.asarray(array)
    if not array.flags.writeable:  # e.g. memory-mapped data: torch wants a private copy
        array = np.array(array)
    return torch.as_tensor(array, dtype=dtype, device=device)


def log_likelihoods(
    x: np.ndarray | torch.Tensor,
    centres: np.ndarray | torch.Tensor,
    sigmas: Sequence[float],
    *,
    precision: Precision = "float32",
    device: str = "cpu",
    max_block_bytes: int = 256 * 2**20,
) -> np.ndarray:
    """Per-example Parzen log-likelihood of each row of `x` for every sigma.

    Returns a float64 array of shape (len(sigmas), len(x)).
    """
    dtype, dev = _DTYPES[precision], resolve_device(device)
    for s in sigmas:
        if not 1e-10 < s < 1e10:  # outside, float32 exponents overflow
            raise UsageError(f"sigma {s:g} cannot be computed with: use one in (1e-10, 1e10)")
    with torch.inference_mode():
        c = _as_tensor(centres, dtype, dev)
        xs = _as_tensor(x, dtype, dev)
        if c.ndim != 2 or xs.ndim != 2 or c.shape[1] != xs.shape[1]:
            raise UsageError(f"shape mismatch: points {tuple(xs.shape)}, centres {tuple(c.shape)}")
        n_c, d = c.shape
        shift = c.mean(dim=0)
        c = c - shift
        xs = xs - shift
        c_sq = (c * c).sum(dim=1)
        x_sq = (xs * xs).sum(dim=1)
        item = c.element_size()
        cols = min(n_c, max(1, max_block_bytes // (2 * 256 * item)))
        rows = max(1, min(len(xs), max_block_bytes // (2 * cols * item)))
        scales = [-0.5 / (s * s) for s in sigmas]
        floor = math.log(torch.finfo(dtype).tiny) + 1.0
        out = torch.empty((len(sigmas), len(xs)), dtype=torch.float64, device=dev)
        part = torch.empty((rows, cols), dtype=dtype, device=dev)
        work = torch.empty((rows, cols), dtype=dtype, device=dev)
        for r0 in range(0, len(xs), rows):
            xb, xb_sq = xs[r0 : r0 + rows], x_sq[r0 : r0 + rows].double()
            acc = torch.full((len(sigmas), len(xb)), -math.inf, dtype=torch.float64, device=dev)
            for c0 in range(0, n_c, cols):
                cb = c[c0 : c0 + cols]
                # ||mu||^2 - 2 x.mu: the squared distance less the row constant ||x||^2, which
                # cancels in the shifted exponent below, so one fused product is the only big pass
                m = torch.addmm(
                    c_sq[None, c0 : c0 + cols], xb, cb.T, alpha=-2.0, out=part[: len(xb), : len(cb)]
                )
                m_min = m.amin(dim=1)
                d_min = (xb_sq + m_min.double()).clamp_(min=0.0)  # smallest squared distance
                e = work[: len(xb), : len(cb)]
                for j, scale in enumerate(scales):
                    # exp(scale * (d2 - d2_min)) <= 1: one fused multiply-add, then exp, then sum.
                    # Exponents below `floor` are raised to it: exp(floor) ~ 1e-37 (float32) next
                    # to a row maximum of 1 changes no sum of up to 1e30 terms, and it keeps exp
                    # off the slow underflow path of the vector maths library (10x slower).
                    torch.add((-scale) * m_min[:, None], m, alpha=scale, out=e)
                    e.clamp_(min=floor).exp_()
                    lse = e.sum(dim=1).double().log_() + d_min * scale
                    acc[j] = torch.logaddexp(acc[j], lse)
            out[:, r0 : r0 + len(xb)] = acc
        sig = torch.tensor(list(sigmas), dtype=torch.float64, device=dev)
        const = math.log(n_c) + d * torch.log(sig * math.sqrt(2 * math.pi))
        return (out - const[:, None]).cpu().numpy()


def select_sigma(
    samples: np.ndarray | torch.Tensor,
    valid: np.ndarray | torch.Tensor,
    config: ParzenConfig = ParzenConfig(),
) -> tuple[float, tuple[float, ...], np.ndarray]:
    """Cross-validate sigma: the grid value with the highest mean validation log-likelihood.

    Returns the chosen sigma, the mean validation log-likelihood of every grid value, and the
    per-example validation log-likelihoods at the chosen sigma.
    """
    valid = valid[: config.n_valid] if config.n_valid is not None else valid
    lls = log_likelihoods(
        valid,
        samples,
        config.sigmas,
        precision=config.precision,
        device=config.device,
        max_block_bytes=config.max_block_bytes,
    )
    scores = lls.mean(axis=1)
    best = int(np.argmax(scores))
    return config.sigmas[best], tuple(float(s) for s in scores), lls[best]


def evaluate(
    samples: np.ndarray | torch.Tensor,
    valid: np.ndarray | torch.Tensor,
    test: np.ndarray | torch.Tensor | None = None,
    config: ParzenConfig = ParzenConfig(),
    sigma: float | None = None,
) -> ParzenResult:
    """The paper's protocol: choose sigma on `valid` (unless given), then score `test`.

    With `sigma` given the grid search is skipped and `valid` is scored at that sigma.
    """
    kwargs = dict(
        precision=config.precision, device=config.device, max_block_bytes=config.max_block_bytes
    )
    if sigma is None:
        sigma, scores, valid_lls = select_sigma(samples, valid, config)
    else:
        subset = valid[: config.n_valid] if config.n_valid is not None else valid
        valid_lls = log_likelihoods(subset, samples, [sigma], **kwargs)[0]
        scores = (float(valid_lls.mean()),)
    valid_mean, valid_se = mean_and_se(valid_lls)
    test_mean = test_se = None
    if test is not None:
        test_mean, test_se = mean_and_se(log_likelihoods(test, samples, [sigma], **kwargs)[0])
    return ParzenResult(
        sigma=float(sigma),
        valid_mean=valid_mean,
        valid_se=valid_se,
        test_mean=test_mean,
        test_se=test_se,
        sigma_scores=scores,
        n_samples=len(samples),
    )


def evaluate_folds(
    folds: Iterable[tuple[np.ndarray | torch.Tensor, np.ndarray, np.ndarray]],
    config: ParzenConfig = ParzenConfig(),
    sigma: float | None = None,
) -> FoldsResult:
    """TFD protocol: for each fold's (samples, validation set, test set), sigma chosen on that
    fold's validation set (or the given `sigma`); the mean test log-likelihood over folds and its
    standard error across folds. `folds` may be a generator, so that each fold's data is loaded
    only when it is scored (MNIST is one fold)."""
    results = tuple(evaluate(s, v, t, config, sigma=sigma) for s, v, t in folds)
    if not results:
        raise UsageError("need at least one fold: its samples, validation set and test set")
    mean, se = mean_and_se(np.array([r.test_mean for r in results]))
    return FoldsResult(folds=results, test_mean=mean, test_se=se)


def check_samples(samples: np.ndarray, image_shape: Sequence[int], source: str) -> np.ndarray:
    """Validate generated samples and flatten them to (n, d) float32; `source` names them.

    Accepts (n, d), (n, *image_shape) and (n, 1, *image_shape); values must be finite and in
    [0, 1] (the data's pixel range), otherwise the Parzen numbers would be meaningless.
    """
    array = np.asarray(samples)
    d = int(np.prod(image_shape))
    shapes = {(d,), tuple(image_shape), (1, *image_shape)}
    if array.ndim < 2 or tuple(array.shape[1:]) not in shapes or len(array) == 0:
        raise UsageError(
            f"{source}: samples have shape {array.shape}; expected (n, {d}) or "
            f"(n, {', '.join(map(str, image_shape))}) with n >= 1"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise UsageError(f"{source}: samples have dtype {array.dtype}; expected real numbers")
    flat = array.reshape(len(array), d).astype(np.float32, copy=False)
    if not np.isfinite(flat).all():
        raise UsageError(f"{source}: samples contain NaN or Inf")
    low, high = float(flat.min()), float(flat.max())
    if low < 0.0 or high > 1.0:
        raise UsageError(
            f"{source}: sample values span [{low:g}, {high:g}]; expected pixels in [0, 1] "
            "(scale them as the data set is scaled)"
        )
    return flat
