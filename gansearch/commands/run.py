"""`gansearch run`: search a space of GAN hyperparameters with Ray Tune, Optuna and ASHA."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gansearch.errors import UsageError

if TYPE_CHECKING:
    from gansearch.search import SearchOutcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch run`."""
    parser.add_argument("--space", required=True, help="search-space YAML file")
    parser.add_argument("--trials", type=int, help="number of trials (overrides budget.trials)")
    parser.add_argument("--max-epochs", type=int, help="epochs per trial (budget.max_epochs)")
    parser.add_argument(
        "--trial-epochs", type=int, help="epochs over all trials (budget.trial_epochs)"
    )
    parser.add_argument("--concurrency", type=int, help="trials at once (budget.concurrency)")
    parser.add_argument(
        "--address",
        help="an existing Ray cluster: auto (on its head node; default: a local Ray)",
    )
    parser.add_argument("--name", help="experiment name (default: the space's name)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted search")
    parser.add_argument(
        "--trust-state",
        action="store_true",
        help="with --resume: trust (and sign as yours) saved Ray state that you did not write, "
        "e.g. an experiment copied from elsewhere; loading it runs code",
    )
    parser.add_argument("--data-dir", help="directory holding the data set")
    parser.add_argument("--results-dir", help="where experiments go (default: results.dir)")
    parser.add_argument(
        "--progress-interval", type=float, default=10.0, help="seconds between progress lines"
    )
    parser.add_argument("--top", type=int, default=10, help="rows of the leaderboard")
    # MLflow tracking and the Table 1 report (gansearch.tracking, gansearch.report)
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else <results-dir>/mlflow.db)",
    )
    parser.add_argument(
        "--optuna-storage",
        help="Optuna storage URL for the search's study (default: sqlite:///<results-dir>/"
        "optuna.db; optuna-dashboard reads it)",
    )
    parser.add_argument(
        "--report-top",
        type=int,
        default=3,
        help="configurations that get the final Table 1 evaluation at the end (default 3; 0: none)",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="in that report, first train stopped-early trials on to the full epoch budget",
    )


def run(args: argparse.Namespace) -> int:
    """Validate the space, run the search, print the leaderboard."""
    from gansearch.experiment import DRIVER_LOG, RESULTS_FILE
    from gansearch.leaderboard import format_leaderboard
    from gansearch.search import RunOptions, run_search
    from gansearch.space import load_space

    if args.name is not None and not args.name.strip():
        raise UsageError(
            f"--name {args.name!r}: an experiment needs a name; leave --name out to use the "
            "space's name"
        )
    space = load_space(args.space)
    changes = {
        key: value
        for key, value in (
            ("trials", args.trials),
            ("trial_epochs", args.trial_epochs),
            ("max_epochs", args.max_epochs),
            ("concurrency", args.concurrency),
        )
        if value is not None
    }
    if args.report_top < 0:
        raise UsageError(f"--report-top must be >= 0, got {args.report_top}")
    for key, value in changes.items():
        if value < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
    options = RunOptions(
        budget_overrides=changes,
        address=args.address,
        name=args.name,
        resume=args.resume,
        trust_state=args.trust_state,
        data_dir=args.data_dir,
        results_dir=args.results_dir,
        progress_interval=args.progress_interval,
        tracking_uri=args.tracking_uri,
        optuna_storage=args.optuna_storage,
    )
    outcome = run_search(space, options)
    print(format_leaderboard(outcome.table, space, args.top))
    print(f"results: {outcome.experiment_dir / RESULTS_FILE}")
    if outcome.interrupted:
        print(
            f"the search was interrupted; continue it with: {resume_command(args, outcome)}\n"
            f"(Ray's and Optuna's messages: {outcome.experiment_dir / DRIVER_LOG})",
            file=sys.stderr,
        )
        return 128 + int(outcome.stop_signal or signal.SIGINT)  # 130: Ctrl-C, 143: SIGTERM
    if args.report_top:  # Table 1 for the best configurations (gansearch.report)
        from gansearch.experiment import experiment_lock
        from gansearch.report import ReportOptions, format_report, make_report

        options = ReportOptions(
            experiment_dir=outcome.experiment_dir,
            tracking_uri=outcome.tracking_uri,
            top=args.report_top,
            retrain=args.retrain,
            data_dir=args.data_dir,
        )
        with experiment_lock(outcome.experiment_dir):
            report = make_report(options)
        print(format_report(report))
    return 0


def resume_command(args: argparse.Namespace, outcome: SearchOutcome) -> str:
    """The command that continues this search, safe to paste into a shell."""
    words = ["gansearch", "run", "--space", str(Path(args.space).resolve())]
    words += ["--name", outcome.experiment_dir.name]
    words += ["--results-dir", str(outcome.experiment_dir.parent), "--resume"]
    for flag in ("address", "data_dir", "tracking_uri"):
        value = getattr(args, flag)
        if value is not None:
            words += [f"--{flag.replace('_', '-')}", str(value)]
    return shlex.join(words)
