"""`gansearch run`: search a space of GAN hyperparameters with Ray Tune, Optuna and ASHA."""

from __future__ import annotations

import argparse
import sys

from gansearch.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch run`."""
    parser.add_argument("--space", required=True, help="search-space YAML file")
    parser.add_argument("--trials", type=int, help="number of trials (overrides budget.trials)")
    parser.add_argument("--max-epochs", type=int, help="epochs per trial (budget.max_epochs)")
    parser.add_argument("--concurrency", type=int, help="trials at once (budget.concurrency)")
    parser.add_argument(
        "--address",
        help="an existing Ray cluster: auto, or ray://HOST:10001 (default: a local Ray)",
    )
    parser.add_argument("--name", help="experiment name (default: the space's name)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted search")
    parser.add_argument("--data-dir", help="directory holding the data set")
    parser.add_argument("--results-dir", help="where experiments go (default: results.dir)")
    parser.add_argument(
        "--progress-interval", type=float, default=10.0, help="seconds between progress lines"
    )
    parser.add_argument("--top", type=int, default=10, help="rows of the leaderboard")


def run(args: argparse.Namespace) -> int:
    """Validate the space, run the search, print the leaderboard."""
    from gansearch.search import RESULTS_FILE, RunOptions, format_leaderboard, run_search
    from gansearch.space import load_space

    space = load_space(args.space)
    changes = {
        key: value
        for key, value in (
            ("trials", args.trials),
            ("max_epochs", args.max_epochs),
            ("concurrency", args.concurrency),
        )
        if value is not None
    }
    for key, value in changes.items():
        if value < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
    options = RunOptions(
        budget_overrides=changes,
        address=args.address,
        name=args.name,
        resume=args.resume,
        data_dir=args.data_dir,
        results_dir=args.results_dir,
        progress_interval=args.progress_interval,
        leaderboard_size=args.top,
    )
    outcome = run_search(space, options)
    print(format_leaderboard(outcome.table, space, args.top))
    print(f"results: {outcome.experiment_dir / RESULTS_FILE}")
    if outcome.interrupted:
        print(
            f"the search was interrupted; continue it with: gansearch run --space {args.space} "
            f"--name {outcome.experiment_dir.name} --resume",
            file=sys.stderr,
        )
        return 130
    return 0
