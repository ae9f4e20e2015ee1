"""`gansearch train`: train one configuration, checkpoint every epoch, report Table 1 numbers.

Writes into --out: checkpoint.pt (after every epoch, atomically), samples.png (Figure 2 style) and
metrics.json (every epoch's metrics and the final Parzen evaluation).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch

from gansearch.errors import ConfigError, UsageError
from gansearch.train_config import TrainConfig, apply_overrides, config_to_dict, load_config

CHECKPOINT = "checkpoint.pt"
SAMPLES = "samples.png"
METRICS = "metrics.json"
# Keys that may differ between a checkpoint's configuration and the one it resumes with.
RESUMABLE_CHANGES = ("epochs", "device", "eval.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch train`."""
    parser.add_argument("--config", required=True, help="YAML configuration (see configs/)")
    parser.add_argument("--epochs", type=int, help="total epochs (overrides the config's epochs)")
    parser.add_argument("--data-dir", help="data directory (default: GANSEARCH_DATA_DIR or cache)")
    parser.add_argument("--out", help="output directory (default: runs/<config name>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --out"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the config)")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_same_run(stored: TrainConfig, given: TrainConfig, source: str) -> None:
    """Resuming is exact only with the same model, data and game: refuse other changes."""
    old, new = _flatten(config_to_dict(stored)), _flatten(config_to_dict(given))
    for key, value in new.items():
        if key.startswith(RESUMABLE_CHANGES) or key in RESUMABLE_CHANGES:
            continue
        if old.get(key) != value:
            raise ConfigError(
                f"{source}: {key}: is {value!r} but the checkpoint was trained with "
                f"{old.get(key)!r}; resume with the same configuration or choose another --out"
            )


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    """Train (or resume), then evaluate with the final Parzen settings and draw samples."""
    config = load_config(args.config)
    overrides: dict[str, Any] = {}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.device is not None:
        overrides["device"] = args.device
    if overrides:
        config = apply_overrides(config, overrides, source="command line")
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    checkpoint = out / CHECKPOINT
    if args.resume and not checkpoint.exists():
        raise UsageError(f"--resume: no checkpoint at {checkpoint}")
    if not args.resume and checkpoint.exists():
        raise UsageError(
            f"{checkpoint} already exists: pass --resume to continue it or choose another --out"
        )

    from gansearch.data import load_dataset
    from gansearch.figures import sample_grid
    from gansearch.trainer import EpochMetrics, Trainer

    dataset = load_dataset(config.data.name, args.data_dir, fold=config.data.fold)
    if args.resume:
        _check_same_run(load_stored_config(checkpoint), config, str(args.config))
        trainer = Trainer.from_checkpoint(checkpoint, dataset, config=config)
        print(f"resuming {checkpoint} after epoch {trainer.epoch}", flush=True)
    else:
        trainer = Trainer(config, dataset)
    print(
        f"training on {dataset.name} ({len(dataset.train)} examples, d={dataset.dim}) "
        f"for {config.epochs} epochs on {trainer.device} ({config.optim.update} updates)",
        flush=True,
    )

    def report(m: EpochMetrics) -> None:
        valid = (
            f"  valid LL {m.valid_ll:.2f} ± {m.valid_se:.2f} (sigma {m.sigma:.3f})"
            if m.valid_ll is not None
            else ""
        )
        print(
            f"epoch {m.epoch}/{config.epochs}  d_loss {_fmt(m.d_loss)}  g_loss {_fmt(m.g_loss)}  "
            f"D(x) {_fmt(m.d_real, 3)}  D(G(z)) {_fmt(m.d_fake, 3)}  lr_d {m.lr_d:.5f}  "
            f"lr_g {m.lr_g:.5f}  momentum {m.momentum:.4f}{valid}  {m.seconds:.1f} s",
            flush=True,
        )
        trainer.save_checkpoint(checkpoint)

    trainer.fit(config.epochs, callback=report)

    e = config.eval
    result = trainer.evaluate(e.final_samples, e.final_n_valid, test=True)
    n_valid = e.final_n_valid or len(dataset.valid)
    print(
        f"Parzen log-likelihood ({e.final_samples} samples, sigma {result.sigma:.4f} chosen on "
        f"{min(n_valid, len(dataset.valid))} validation examples):"
    )
    print(f"  validation: {result.valid_mean:.2f} ± {result.valid_se:.2f}")
    print(f"  test:       {result.test_mean:.2f} ± {result.test_se:.2f}")

    grid_rng = torch.Generator(device=trainer.device).manual_seed(config.seed)
    samples = trainer.sample(e.grid_rows * e.grid_cols, rng=grid_rng).numpy()
    png = sample_grid(
        samples, dataset.image_shape, dataset.train, e.grid_rows, e.grid_cols, out / SAMPLES
    )
    summary = {
        "config": config_to_dict(config),
        "dataset": dataset.name,
        "epochs": [m.as_dict() for m in trainer.history],
        "final": {
            "samples": e.final_samples,
            "sigma": result.sigma,
            "valid_mean": result.valid_mean,
            "valid_se": result.valid_se,
            "test_mean": result.test_mean,
            "test_se": result.test_se,
        },
    }
    tmp = out / f".{METRICS}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / METRICS)
    print(f"wrote {checkpoint}, {png} and {out / METRICS}", file=sys.stderr)
    return 0


def load_stored_config(checkpoint: Path) -> TrainConfig:
    """The configuration stored in a trainer checkpoint."""
    from gansearch.train_config import config_from_dict

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return config_from_dict(state["config"], source=f"{checkpoint} (stored config)")
