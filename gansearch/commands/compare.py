"""`gansearch compare`: searches side by side, as the best objective found against the budget.

    gansearch compare runs/mnist-laptop-tpe-asha runs/mnist-laptop-random --out budget.png \
        [--labels "TPE+ASHA" random] [--reference "paper config=52.5"] [--csv budget.csv]

For each experiment directory, the trials' reports are replayed in the order they arrived and
the best value of the search's primary objective is drawn against the trial-epochs spent so far
(epochs trained by all trials together), so strategies that stop, copy or restart trials are
compared at equal cost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch compare`."""
    from gansearch.commands.curves import add_figure_options

    parser.add_argument("experiments", nargs="+", type=Path, help="experiment directories")
    add_figure_options(parser, "best objective against budget", "e.g. 'paper configuration=52.5'")
    parser.add_argument("--csv", type=Path, help="also write the curves as CSV")


def run(args: argparse.Namespace) -> int:
    """Read each experiment's reports, print a summary line each, draw the figure."""
    import pandas as pd

    from gansearch.commands.curves import parse_references
    from gansearch.errors import UsageError
    from gansearch.experiment import SPACE_COPY, is_experiment, read_reports
    from gansearch.figures import budget_curves
    from gansearch.histories import budget_curve
    from gansearch.space import stored_space

    labels = args.labels or [p.name for p in args.experiments]
    if len(labels) != len(args.experiments):
        raise UsageError(f"--labels: {len(labels)} labels for {len(args.experiments)} experiments")
    references = parse_references(args.reference)
    curves, metrics = {}, set()
    for label, directory in zip(labels, args.experiments, strict=True):
        if not is_experiment(directory):
            raise UsageError(f"{directory}: no {SPACE_COPY} (not a gansearch experiment)")
        metric = stored_space(directory).objective.primary
        metrics.add(metric)
        histories = read_reports(directory)
        if not histories:
            raise UsageError(f"{directory}: no trial has reported yet")
        curve = budget_curve(histories, metric)
        curves[label] = curve
        found = curve.dropna(subset=["best"])
        if found.empty:
            print(f"{label}: {len(histories)} trials, no finite {metric}")
            continue
        first = found[found["best"] == found["best"].iloc[-1]].iloc[0]
        print(
            f"{label}: best {metric} {first['best']:.2f} (trial {first['trial']}), reached after "
            f"{int(first['trial_epochs'])} of {int(curve['trial_epochs'].iloc[-1])} trial-epochs, "
            f"{len(histories)} trials"
        )
    if len(metrics) > 1:
        raise UsageError(f"the experiments optimise different objectives: {sorted(metrics)}")
    png = budget_curves(curves, args.out, args.title, metrics.pop(), references)
    print(f"wrote {png}", file=sys.stderr)
    if args.csv:
        table = pd.concat([c.assign(search=label) for label, c in curves.items()])
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0
