"""The `gansearch` command line: one sub-command per module, errors as clear messages."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gansearch.errors import GansearchError

# name -> module exposing `add_arguments(parser)` and `run(args) -> int`, with a one-line help.
# Modules are imported lazily so that `gansearch parzen` does not pay for importing Ray or MLflow.
COMMANDS: dict[str, tuple[str, str]] = {
    "parzen": (
        "gansearch.commands.parzen",
        "score samples with the paper's Parzen-window protocol",
    ),
    "quality": (
        "gansearch.commands.quality",
        "FID, mode coverage and confidence of samples; the reference rows of Table 1",
    ),
    "classifier": (
        "gansearch.commands.classifier",
        "train (or find) the cached classifier behind the quality metrics",
    ),
    "data": ("gansearch.commands.data", "locate, download, verify and cache a data set"),
    "train": ("gansearch.commands.train", "train one GAN configuration (the paper's Algorithm 1)"),
    "evaluate": (
        "gansearch.commands.evaluate",
        "the paper's final evaluation of trainer checkpoints, on two sigma grids",
    ),
    "curves": (
        "gansearch.commands.curves",
        "learning curves (validation log-likelihood, FID) of gansearch train runs",
    ),
    "schedule": (
        "gansearch.commands.schedule",
        "the values in force through a network's history, traced back through a search's copies",
    ),
    "run": ("gansearch.commands.run", "search GAN hyperparameters (Ray Tune + Optuna + ASHA)"),
    "sample": (
        "gansearch.commands.sample",
        "samples from a search's best generators, read back from MLflow (.npy or .png)",
    ),
    "compare": (
        "gansearch.commands.compare",
        "searches side by side: the best objective found against trial-epochs spent",
    ),
    "report": (
        "gansearch.commands.report",
        "Table 1 for a search's best configurations, logged to MLflow",
    ),
    "ui": ("gansearch.commands.ui", "open a search's MLflow runs in the MLflow UI"),
    "schema": (
        "gansearch.commands.schema",
        "the JSON Schema of a search-space file or a training configuration, for editors",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="gansearch",
        description="Hyperparameter search for adversarial nets, measured as the paper measured.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # the sub-command is not built yet
                continue
            raise
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gansearch` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except GansearchError as exc:
        print(f"gansearch {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"gansearch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
