"""`gansearch parzen`: score a set of samples under the paper's Parzen-window protocol."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gansearch.data import DATASETS, load_dataset
from gansearch.data.tfd import N_FOLDS
from gansearch.errors import UsageError
from gansearch.inputs import open_regular
from gansearch.parzen import ParzenConfig, ParzenResult, check_samples, evaluate_folds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch parzen`."""
    parser.add_argument(
        "--samples",
        required=True,
        nargs="+",
        type=Path,
        metavar="FILE.npy",
        help="generated samples, (n, d) or (n, H, W), pixels in [0, 1]; for TFD one file for "
        "every fold or one file per fold",
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--sigma", type=float, help="use this sigma instead of cross-validating")
    parser.add_argument("--data-dir", help="directory holding the data set (see README)")
    parser.add_argument(
        "--n-valid",
        type=int,
        default=1000,
        help="validation examples used to choose sigma (default 1000, as the released script; "
        "0 = all)",
    )
    parser.add_argument("--precision", choices=("float32", "float64"), default="float32")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--fold", type=int, help="TFD: score only this fold (default: all five)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def load_samples(path: Path) -> np.ndarray:
    """A .npy array of samples; UsageError for a missing or unreadable file, one that is not a
    regular file (a device or a FIFO never ends), or one whose header declares more data than it
    holds (checked before anything is allocated; no more than the header declares is read)."""
    with open_regular(path, UsageError) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            declared = math.prod(shape) * dtype.itemsize
            held = os.fstat(f.fileno()).st_size - f.tell()
            if dtype.hasobject:
                raise UsageError(f"{path}: holds Python objects, not numbers")
            if declared != held:
                raise UsageError(
                    f"{path}: its header declares shape {shape} of {dtype} ({declared:,} bytes) "
                    f"but the file holds {held:,}: truncated or not a plain .npy array"
                )
            f.seek(0)
            return np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UsageError(f"{path}: not a readable .npy array ({exc})") from exc


def print_result(label: str, result: ParzenResult, config: ParzenConfig) -> None:
    """sigma's cross-validation, sigma, and both log-likelihoods, one per line."""
    if len(result.sigma_scores) > 1:
        print(f"{label}sigma cross-validation (mean validation log-likelihood):")
        for sigma, score in zip(config.sigmas, result.sigma_scores, strict=True):
            mark = "  <- chosen" if sigma == result.sigma else ""
            print(f"{label}  sigma {sigma:.4f}: {score:10.2f}{mark}")
    print(f"{label}sigma: {result.sigma:.4f}")
    print(f"{label}validation log-likelihood: {result.valid_mean:.2f} ± {result.valid_se:.2f}")
    print(f"{label}test log-likelihood: {result.test_mean:.2f} ± {result.test_se:.2f}")


def run(args: argparse.Namespace) -> int:
    """Load samples and data, run the protocol, print sigma and log-likelihoods."""
    if args.sigma is not None and not (math.isfinite(args.sigma) and args.sigma > 0):
        raise UsageError(f"--sigma must be a positive, finite number, got {args.sigma}")
    if args.sigma is not None and not 1e-10 < args.sigma < 1e10:
        raise UsageError(f"--sigma {args.sigma:g} is out of range: use one in (1e-10, 1e10)")
    if args.n_valid < 0:
        raise UsageError(f"--n-valid must be >= 0, got {args.n_valid}")
    config = ParzenConfig(
        n_valid=args.n_valid or None, precision=args.precision, device=args.device
    )
    folds = [None]
    if args.dataset == "tfd":
        folds = [args.fold] if args.fold is not None else list(range(N_FOLDS))
    if len(args.samples) not in (1, len(folds)):
        raise UsageError(f"give one --samples file, or one per fold ({len(folds)})")
    raw = [load_samples(path) for path in args.samples]

    def scored_folds() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each fold's samples and data, loaded only when its turn comes."""
        for i, fold in enumerate(folds):
            data = load_dataset(args.dataset, args.data_dir, fold=fold or 0)
            which = 0 if len(raw) == 1 else i
            samples = check_samples(raw[which], data.image_shape, str(args.samples[which]))
            n_valid = min(len(data.valid), config.n_valid or len(data.valid))
            print(
                f"{labels[i]}scoring {len(data.test)} test examples of {data.name} under "
                f"{len(samples)} samples; sigma from {n_valid} validation examples",
                file=sys.stderr,
            )
            yield samples, data.valid, data.test

    labels = [f"[fold {fold}] " if fold is not None else "" for fold in folds]
    start = time.perf_counter()
    scored = evaluate_folds(scored_folds(), config, sigma=args.sigma)
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    results: list[dict] = []
    for label, fold, result in zip(labels, folds, scored.folds, strict=True):
        numbers = (result.valid_mean, result.valid_se, result.test_mean, result.test_se)
        if not all(math.isfinite(x) for x in numbers):
            which = f"--sigma {args.sigma:g}" if args.sigma is not None else "every grid sigma"
            raise UsageError(
                f"{which}: the log-likelihood is not finite (the kernels underflow: sigma is far "
                "too small for these samples)"
                + ("; leave out --sigma to cross-validate it" if args.sigma is not None else "")
            )
        if not args.json:
            print_result(label, result, config)
        results.append({"fold": fold, **result.__dict__})
    summary: dict = {"dataset": args.dataset, "results": results}
    if len(folds) > 1:
        summary.update(test_mean=scored.test_mean, test_se=scored.test_se)
        if not args.json:
            print(
                f"test log-likelihood over {len(folds)} folds: "
                f"{scored.test_mean:.2f} ± {scored.test_se:.2f}"
            )
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
