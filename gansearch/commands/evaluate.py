"""`gansearch evaluate`: the paper's final evaluation of trainer checkpoints, on two sigma grids.

    gansearch evaluate runs/paper/best.pt [runs/paper/epoch-0100.pt ...] [--seed 0 1 2] [--csv F]

For every checkpoint and seed: the checkpoint's `eval.final_samples` samples drawn with noise from
`torch.Generator().manual_seed(seed)` (as `gansearch report` draws them), sigma cross-validated on
the first `eval.final_n_valid` validation images on the released 10-value grid and on the finer
`eval.fine_sigmas` grid, the mean test log-likelihood with its standard error at each, and, for a
data set with class labels, the quality classifier's FID, classes covered and confidence of the
same samples. Choose checkpoints on validation (`gansearch train` keeps best.pt); scoring many
checkpoints on the test set and keeping the best is choosing on test.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from gansearch.commands.train import add_set_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch evaluate`."""
    parser.add_argument("checkpoints", nargs="+", type=Path, help="trainer checkpoints (.pt)")
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[0], help="seeds of the sample noise (default 0)"
    )
    parser.add_argument("--data-dir", help="data directory (default: GANSEARCH_DATA_DIR or cache)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: as trained)")
    add_set_option(
        parser,
        "override an evaluation setting (eval.*), e.g. --set eval.final_n_valid=null to choose "
        "sigma on every validation image; repeatable",
    )
    parser.add_argument("--no-quality", action="store_true", help="Parzen only: no FID")
    parser.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines")


def evaluate_checkpoint(trainer: Any, seed: int, scorer: Any = None) -> list[dict[str, Any]]:
    """One row per sigma grid: the Table 1 protocol on `trainer`'s generator with seeded noise."""
    from gansearch.evaluation import final_evaluation

    final = final_evaluation(trainer, seed, scorer, f"epoch {trainer.epoch} samples")
    scores = final.quality.metrics() if final.quality is not None else {}
    return [
        {
            "epoch": trainer.epoch,
            "seed": seed,
            "grid": grid,
            "grid_size": final.grid_sizes[grid],
            "sigma": result.sigma,
            "valid_ll": result.valid_mean,
            "valid_se": result.valid_se,
            "test_ll": result.test_mean,
            "test_se": result.test_se,
            "n_samples": result.n_samples,
            **scores,
        }
        for grid, result in final.grids.items()
    ]


def run(args: argparse.Namespace) -> int:
    """Evaluate every checkpoint at every seed and print one line per (checkpoint, seed, grid)."""
    from gansearch.commands.train import load_stored_config, parse_sets
    from gansearch.data import load_dataset
    from gansearch.errors import UsageError
    from gansearch.train_config import apply_overrides
    from gansearch.trainer import Trainer

    missing = [str(p) for p in args.checkpoints if not p.is_file()]
    if missing:
        raise UsageError(f"no such checkpoint: {', '.join(missing)}")
    overrides = parse_sets(args.set)
    if args.device:
        overrides["device"] = args.device
    for key in overrides:
        if not key.startswith("eval.") and key != "device":
            raise UsageError(f"--set {key}: only eval.* settings can change for a trained model")
    rows: list[dict[str, Any]] = []
    datasets: dict[tuple[str, int], Any] = {}
    scorers: dict[str, Any] = {}
    for path in args.checkpoints:
        config = load_stored_config(path)
        if overrides:
            config = apply_overrides(config, overrides, source="command line")
        key = (config.data.name, config.data.fold)
        if key not in datasets:
            datasets[key] = load_dataset(key[0], args.data_dir, fold=key[1])
        dataset = datasets[key]
        scorer = None
        if not args.no_quality and dataset.test_labels is not None:
            if dataset.name not in scorers:
                from gansearch.quality import load_scorer

                say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
                scorers[dataset.name] = load_scorer(dataset, say=say)
            scorer = scorers[dataset.name]
        trainer = Trainer.from_checkpoint(path, dataset, config=config)
        for seed in args.seed:
            for row in evaluate_checkpoint(trainer, seed, scorer):
                row = {"checkpoint": str(path), **row}
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print(_line(row), flush=True)
    if args.csv:
        import pandas as pd

        args.csv.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0


def _line(row: dict[str, Any]) -> str:
    fid = row.get("fid")
    quality = (
        f"  FID {fid:.2f}  classes {int(row['classes_covered'])}  conf {row['confidence']:.3f}"
        if fid is not None and math.isfinite(fid)
        else ""
    )
    return (
        f"{row['checkpoint']}  epoch {row['epoch']}  seed {row['seed']}  {row['grid']:>8} grid "
        f"({row['grid_size']}): sigma {row['sigma']:.4f}  valid {row['valid_ll']:.2f} ± "
        f"{row['valid_se']:.2f}  test {row['test_ll']:.2f} ± {row['test_se']:.2f}{quality}"
    )
