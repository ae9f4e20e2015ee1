"""`gansearch curves`: the learning curves of `gansearch train` runs, in one figure.

    gansearch curves runs/paper-seed0 runs/paper-seed1 --out curves.png [--reference 225 ...]

Reads each run's checkpoint.pt (so a run still training can be plotted) and draws validation
Parzen log-likelihood with its standard error and, where the run measured it, FID against epoch,
one line per run, each run's best validation epoch circled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch curves`."""
    parser.add_argument("runs", nargs="+", type=Path, help="output directories of gansearch train")
    add_figure_options(parser, "learning curves", "on the log-likelihood panel, e.g. 'paper=225'")


def add_figure_options(parser: argparse.ArgumentParser, title: str, reference: str) -> None:
    """--out, --labels, --title and --reference, shared by the figure commands."""
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--labels", nargs="+", help="one legend label per input (default: names)")
    parser.add_argument("--title", default=title, help="figure title")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help=f"a horizontal line {reference}; repeatable",
    )


def parse_references(items: list[str]) -> dict[str, float]:
    """--reference LABEL=NUMBER options as label -> value."""
    from gansearch.errors import UsageError

    references: dict[str, float] = {}
    for item in items:
        label, sep, value = item.rpartition("=")
        try:
            references[label] = float(value)
        except ValueError:
            sep = ""
        if not sep or not label:
            raise UsageError(f"--reference {item!r}: expected LABEL=NUMBER, e.g. 'paper=225'")
    return references


def run(args: argparse.Namespace) -> int:
    """Load every run's history and draw the figure."""
    import torch

    from gansearch.commands.train import CHECKPOINT
    from gansearch.errors import UsageError
    from gansearch.figures import training_curves
    from gansearch.trainer import EpochMetrics

    labels = args.labels or [p.name for p in args.runs]
    if len(labels) != len(args.runs):
        raise UsageError(f"--labels: {len(labels)} labels for {len(args.runs)} runs")
    references = parse_references(args.reference)
    histories = {}
    for label, directory in zip(labels, args.runs, strict=True):
        path = directory / CHECKPOINT
        if not path.is_file():
            raise UsageError(f"{directory}: no {CHECKPOINT} (not a gansearch train output)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        histories[label] = [EpochMetrics(**m) for m in state["history"]]
    png = training_curves(histories, args.out, args.title, references)
    print(f"wrote {png}", file=sys.stderr)
    return 0
