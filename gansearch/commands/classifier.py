"""`gansearch classifier`: train (or find) the cached classifier behind the quality metrics."""

from __future__ import annotations

import argparse
import sys

from gansearch.data import DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch classifier`."""
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-dir", help="directory holding the data set (see README)")
    parser.add_argument(
        "--retrain", action="store_true", help="train it again even if a cached one exists"
    )


def say(text: str) -> None:
    """A progress line on stderr."""
    print(text, file=sys.stderr, flush=True)


def require_labels(dataset: str) -> None:
    """UsageError for a data set without class labels (no classifier, no quality metrics)."""
    from gansearch.data import LABELLED_DATASETS
    from gansearch.errors import UsageError

    if dataset not in LABELLED_DATASETS:
        raise UsageError(
            f"{dataset} has no class labels, so it has no classifier and no quality metrics "
            f"(FID, mode coverage, confidence); they exist for {', '.join(LABELLED_DATASETS)}"
        )


def run(args: argparse.Namespace) -> int:
    """Load or train the classifier; print its test accuracy and where it is cached."""
    from gansearch.data import load_dataset
    from gansearch.quality import load_scorer

    require_labels(args.dataset)
    data = load_dataset(args.dataset, args.data_dir)
    scorer = load_scorer(data, retrain=args.retrain, say=say)
    trained = not scorer.from_cache
    how = f"trained in {scorer.train_seconds:.0f} s" if trained else "cached"
    print(
        f"classifier for {data.name}: test accuracy {scorer.test_accuracy:.2%} on "
        f"{len(data.test)} test images ({scorer.epochs} epochs, {how})"
    )
    print(f"cache: {scorer.path}")
    return 0
