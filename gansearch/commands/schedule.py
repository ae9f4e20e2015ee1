"""`gansearch schedule`: the values in force for a network's whole history, and who trained it.

    gansearch schedule mnist-pbt-150 --results-dir runs      # the search's best trial
    gansearch schedule runs/mnist-pbt-150/00002              # a trial of an experiment directory
    gansearch schedule runs/pbt-winner-300                   # a `gansearch train --from` run

Under population-based training a trial's networks are not its own from epoch 1: at a ranking
it copies a stronger trial's checkpoint and goes on with perturbed values, so the winner's
history runs through other trials. This prints that history as a table, one row per stretch of
epochs trained with the same values: the trial that trained it, the checkpoint it began from,
the searched values, and the learning rates and momentum in force at its first and last epoch
(from the checkpoint's own per-epoch history, so decay and the momentum ramp show). A train
`--from` run adds its own epochs as the last stretch, with the values its `--set` changed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gansearch.histories import Stretch

SOURCE_HELP = (
    "a search (a name in --results-dir or an experiment directory), optionally /TRIAL (default: "
    "its best trial), or the output directory of gansearch train --from"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch schedule`."""
    parser.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    parser.add_argument(
        "--results-dir", default="runs", help="where a search named by SOURCE is (default: runs)"
    )


def run(args: argparse.Namespace) -> int:
    """Trace the networks' history back through the search's copies and print it."""
    from gansearch.commands.train import CHECKPOINT, ORIGIN, continued_trial, read_checkpoint
    from gansearch.errors import UsageError
    from gansearch.experiment import read_reports
    from gansearch.histories import ancestry

    source = Path(args.source)
    if (source / ORIGIN).is_file():  # a train --from run: its trial, then its own epochs
        origin = _read_origin(source / ORIGIN)
        state = read_checkpoint(source / CHECKPOINT, option="schedule")
        continued = True
    else:
        origin, _, _ = continued_trial(args.source, Path(args.results_dir), option="schedule")
        state = read_checkpoint(Path(origin["checkpoint"]), option="schedule")
        continued = False
    experiment_dir = Path(origin["experiment_dir"])
    try:
        stretches = ancestry(read_reports(experiment_dir), origin["trial_id"], int(origin["epoch"]))
    except ValueError as exc:
        raise UsageError(f"schedule: {experiment_dir}: {exc}") from None
    history = {int(m["epoch"]): m for m in state["history"]}
    last = max(history)
    if continued and last > stretches[-1].last:
        previous = stretches[-1]
        hp = previous.hp | {key: new for key, (_, new) in origin.get("changed", {}).items()}
        stretches.append(
            Stretch(str(source), previous.last + 1, last, hp, (previous.trial, previous.last))
        )
    print(f"{origin['experiment']}, trial {origin['trial_id']} at epoch {origin['epoch']}")
    print(render(stretches, history))
    return 0


def _read_origin(path: Path) -> dict[str, Any]:
    from gansearch.errors import UsageError

    try:
        origin = json.loads(path.read_text())
        origin["experiment_dir"], origin["trial_id"], origin["epoch"]  # noqa: B018
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"schedule: {path} is not a gansearch train origin ({exc!r})") from None
    return origin


def render(stretches: list[Stretch], history: dict[int, dict[str, Any]]) -> str:
    """The stretches as a Markdown table: epochs, trial, where it began, the in-force learning
    rates and momentum (first -> last epoch of the stretch), then each searched value."""
    keys = list(dict.fromkeys(k for s in stretches for k in s.hp))
    header = ["epochs", "trained by", "began from", "lr_d", "lr_g", "momentum", *keys]
    rows = [header, ["---"] * len(header)]
    for s in stretches:
        began = f"{_short(s.copied[0])} epoch {s.copied[1]}" if s.copied else "scratch"
        rows.append(
            [
                f"{s.first}-{s.last}",
                _short(s.trial),
                began,
                *(_span(history, s, name) for name in ("lr_d", "lr_g", "momentum")),
                *(_fmt(s.hp.get(k)) for k in keys),
            ]
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _span(history: dict[int, dict[str, Any]], stretch: Stretch, name: str) -> str:
    """A value in force at a stretch's first and last epoch (one value when it did not change)."""
    first, last = history.get(stretch.first, {}).get(name), history.get(stretch.last, {}).get(name)
    if first is None or last is None:
        return "?"
    a, b = _fmt(first), _fmt(last)
    return a if a == b else f"{a} -> {b}"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _short(trial: str) -> str:
    """A search trial's number (`3b2c1_00004` -> `00004`); a train run's directory name."""
    if "/" in trial:
        return Path(trial).name
    return trial.rsplit("_", 1)[-1]
