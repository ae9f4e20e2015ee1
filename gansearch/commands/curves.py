"""`gansearch curves`: the learning curves of `gansearch train` runs, or of a search's trials,
in one figure.

    gansearch curves runs/paper-seed0 runs/paper-seed1 --out curves.png [--reference 225 ...]
    gansearch curves runs/mnist-pbt-150 runs/paper-seed0 --out population.png

Reads each run's checkpoint.pt (so a run still training can be plotted) and draws validation
Parzen log-likelihood with its standard error and, where the run measured it, FID against epoch,
one line per run, each run's best validation epoch circled. An experiment directory of
`gansearch run` (it may still be running) is drawn from its report log, one line per trial, with
the copies of population-based training marked where a trial took another's networks and
divergences crossed; train runs given beside it are drawn as references. A CSV written by
`gansearch evaluate --csv` (checkpoints of a run evaluated afterwards, e.g. every 10th epoch) is
drawn like a train run from its released-grid rows, averaged over seeds at each epoch.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gansearch.figures import Segment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch curves`."""
    parser.add_argument(
        "runs",
        nargs="+",
        type=Path,
        help="output directories of gansearch train, experiment directories of gansearch run, "
        "or CSV files written by gansearch evaluate --csv",
    )
    add_figure_options(parser, "learning curves", "on the log-likelihood panel, e.g. 'paper=225'")
    parser.add_argument(
        "--ll-limits",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="the log-likelihood axis's range (default: every point; early epochs can be far "
        "below the rest)",
    )


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
    """Load every run's (or search's) history and draw the figure."""
    from gansearch.errors import UsageError
    from gansearch.experiment import REPORTS_FILE
    from gansearch.figures import population_curves, training_curves

    labels = args.labels or [p.name for p in args.runs]
    if len(labels) != len(args.runs):
        raise UsageError(f"--labels: {len(labels)} labels for {len(args.runs)} runs")
    references = parse_references(args.reference)
    histories, trials = {}, {}
    for label, directory in zip(labels, args.runs, strict=True):
        if (directory / REPORTS_FILE).is_file():
            trials.update(search_segments(directory, label))
        elif directory.suffix == ".csv" and directory.is_file():
            histories[label] = evaluation_history(directory)
        else:
            histories[label] = train_history(directory)
    limits = tuple(args.ll_limits) if args.ll_limits else None
    if limits is not None and not limits[0] < limits[1]:
        raise UsageError(f"--ll-limits {limits[0]:g} {limits[1]:g}: LOW must be below HIGH")
    if trials:
        png = population_curves(trials, args.out, args.title, histories, references, limits)
    else:
        png = training_curves(histories, args.out, args.title, references, limits)
    print(f"wrote {png}", file=sys.stderr)
    return 0


def train_history(directory: Path) -> list[Any]:
    """The EpochMetrics history of a `gansearch train` output directory (its checkpoint.pt).
    A `train --from` run's history begins with its search trial's, drawn by the search itself:
    it is kept from the epoch the run continued from, so its line takes over where the trial's
    ends."""
    import json

    import torch

    from gansearch.commands.train import CHECKPOINT, ORIGIN
    from gansearch.errors import UsageError
    from gansearch.trainer import EpochMetrics

    path = directory / CHECKPOINT
    if not path.is_file():
        raise UsageError(
            f"{directory}: neither a gansearch train output (no {CHECKPOINT}) nor a search's "
            "experiment directory (no report log)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        history = [EpochMetrics(**m) for m in state["history"]]
    except Exception as exc:  # a truncated or foreign file
        raise UsageError(f"{path}: cannot read its history ({type(exc).__name__})") from None
    origin = directory / ORIGIN
    if origin.is_file():
        try:
            first = int(json.loads(origin.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{origin}: cannot read where the run began ({exc!r})") from None
        history = [m for m in history if m.epoch >= first]
    return history


def evaluation_history(path: Path) -> list[Any]:
    """A `gansearch evaluate --csv` file as an EpochMetrics history: each epoch's released-grid
    rows, averaged over seeds (the file holds no training statistics: those are NaN)."""
    import pandas as pd

    from gansearch.errors import UsageError
    from gansearch.trainer import EpochMetrics

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read it as CSV ({exc})") from None
    missing = {"epoch", "valid_ll"} - set(table.columns)
    if missing:
        raise UsageError(
            f"{path}: not a gansearch evaluate CSV (no column {', '.join(sorted(missing))})"
        )
    if "grid" in table.columns:
        table = table[table["grid"] == "released"]
    optional = [c for c in ("valid_se", "sigma", "fid") if c in table.columns]
    means = table.groupby("epoch")[["valid_ll", *optional]].mean().reset_index()
    nan = math.nan
    return [
        EpochMetrics(
            epoch=int(row["epoch"]),
            **dict.fromkeys(("d_loss", "g_loss", "d_real", "d_fake", "lr_d", "lr_g"), nan),
            momentum=nan,
            d_steps=0,
            g_steps=0,
            seconds=0.0,
            **{c: None if pd.isna(row[c]) else float(row[c]) for c in ["valid_ll", *optional]},
        )
        for row in means.to_dict("records")
    ]


def search_segments(experiment_dir: Path, label: str) -> dict[str, list[Segment]]:
    """Each trial of a search as learning-curve segments (figures.Segment), keyed
    `<label> <trial>`: a new segment starts where a trial went on from a copied checkpoint,
    and a segment whose state diverged says at which epoch."""
    from gansearch.experiment import read_reports
    from gansearch.figures import Segment

    reports = read_reports(experiment_dir)
    names = {trial: f"{label} {_short(trial)}" for trial in reports}
    curves: dict[str, list[Segment]] = {}
    for trial, history in sorted(reports.items()):
        segments: list[Segment] = []
        points: list[tuple[int, float, float, float | None]] = []
        copied: tuple[str, int] | None = None
        for row in history.to_dict("records"):
            source = row.get("copied_from")
            if isinstance(source, str) and source:
                segments.append(Segment(tuple(points), copied))
                points, copied = [], (names.get(source, source), int(row["copied_epoch"]))
            if row.get("diverged") == 1:
                segments.append(Segment(tuple(points), copied, diverged_at=int(row["epoch"])))
                points, copied = [], None
                continue
            value = row.get("valid_ll")
            if value is not None and math.isfinite(value):
                fid = row.get("fid")
                points.append(
                    (
                        int(row["epoch"]),
                        float(value),
                        float(row.get("valid_se") or 0.0),
                        float(fid) if fid is not None and math.isfinite(fid) else None,
                    )
                )
        segments.append(Segment(tuple(points), copied))
        curves[names[trial]] = [s for s in segments if s.points or s.diverged_at is not None]
    return curves


def _short(trial_id: str) -> str:
    """A trial's number within its search (`3b2c1_00004` -> `00004`)."""
    return trial_id.rsplit("_", 1)[-1]
