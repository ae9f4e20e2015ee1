"""`gansearch report`: Table 1 for the best configurations of a search, logged to MLflow."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch report`."""
    parser.add_argument(
        "--experiment", help="the search's name (default: the only search in --results-dir)"
    )
    parser.add_argument("--top", type=int, default=3, help="configurations to report (default 3)")
    parser.add_argument(
        "--results-dir", default="runs", help="where the searches are (default: runs)"
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: the one the search used, MLFLOW_TRACKING_URI, or "
        "<results-dir>/mlflow.db)",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="first train trials that were stopped early on to the full epoch budget",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the final samples' noise (default 0)"
    )
    parser.add_argument("--data-dir", help="directory holding the data set")
    parser.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="register the best generator in the MLflow model registry as <experiment>-generator "
        "(default: on)",
    )
    parser.add_argument(
        "--references",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Table 1's reference rows: real training images and k-means centroids scored the "
        "same way (default: on for data sets with class labels; computed once, then cached)",
    )
    parser.add_argument(
        "--reference-samples",
        type=int,
        default=10_000,
        help="real training images in the reference row (default 10000)",
    )
    parser.add_argument(
        "--reference-clusters",
        type=int,
        default=10_000,
        help="k-means clusters in the reference row (default 10000)",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate the best trials with the paper's protocol and print Table 1."""
    from gansearch.errors import UsageError
    from gansearch.experiment import experiment_lock, experiment_path, find_experiment
    from gansearch.report import ReportOptions, format_report, make_report

    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    results_dir = Path(args.results_dir).expanduser()
    # Not while a search or another report writes there. A search still running holds the
    # lock and has no results yet: a named experiment is locked before its results are
    # looked for, so that the holder is named rather than "no finished search" said.
    named = None
    if args.experiment is not None:
        named = experiment_path(results_dir, args.experiment, "--experiment")
    first = named if named is not None and named.is_dir() else None
    with nullcontext() if first is None else experiment_lock(first):
        experiment_dir = find_experiment(results_dir, args.experiment)
        options = ReportOptions(
            experiment_dir=experiment_dir,
            tracking_uri=args.tracking_uri,
            top=args.top,
            retrain=args.retrain,
            seed=args.seed,
            data_dir=args.data_dir,
            references=args.references,
            reference_samples=args.reference_samples,
            reference_clusters=args.reference_clusters,
            register=args.register,
        )
        with experiment_lock(experiment_dir) if first is None else nullcontext():
            report = make_report(options)
    print(format_report(report))
    return 0
