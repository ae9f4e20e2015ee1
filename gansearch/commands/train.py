"""`gansearch train`: train one configuration, checkpoint every epoch, report Table 1 numbers.

    gansearch train --config configs/mnist_paper.yaml --epochs 300 --out runs/paper
    gansearch train --from mnist-pbt-150 --epochs 300 --out runs/winner   # a search's best trial

With --from EXPERIMENT[/TRIAL] the run continues a search's best trial (or the named one) from
the checkpoint of its best validation evaluation, with the values in force there (a pbt trial's
perturbed ones), and records where it came from in origin.json and metrics.json; its best epoch
is chosen among that checkpoint and the epochs trained after it. `--set` may change the values a
pbt search perturbs (learning rates, k, momentum, dropout) from then on, e.g. to test a schedule
on a winner; origin.json records each change.

Writes into --out: checkpoint.pt (after every epoch, atomically), best.pt (the epoch with the
highest validation log-likelihood so far), with `eval.keep_checkpoints` epoch-NNNN.pt for every
evaluated epoch, samples.png (Figure 2 style, from best.pt) and
metrics.json (every epoch's metrics and the final evaluation). The final Table 1 numbers are those
of the best validation epoch, with sigma chosen on the released 10-value grid and on the finer
`eval.fine_sigmas` grid; the test set is scored only there and chooses nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gansearch.errors import ConfigError, UsageError
from gansearch.files import write_text
from gansearch.train_config import (
    MUTABLE_SETTINGS,
    TrainConfig,
    apply_overrides,
    changed_settings,
    config_to_dict,
    load_config,
)

if TYPE_CHECKING:
    from gansearch.data.base import Dataset
    from gansearch.evaluation import FinalEvaluation
    from gansearch.quality import QualityScorer
    from gansearch.trainer import Trainer

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
SAMPLES = "samples.png"
METRICS = "metrics.json"
ORIGIN = "origin.json"  # --from: the search trial and checkpoint the run continues


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch train`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML configuration (see configs/)")
    source.add_argument(
        "--from",
        dest="source",
        metavar="EXPERIMENT[/TRIAL]",
        help="continue a search's best trial, or the named one (its id or the end of it), from "
        "its best validation checkpoint with the values in force there",
    )
    parser.add_argument(
        "--results-dir", default="runs", help="where the --from search is (default: runs)"
    )
    parser.add_argument("--epochs", type=int, help="total epochs (overrides the config's epochs)")
    parser.add_argument("--data-dir", help="data directory (default: GANSEARCH_DATA_DIR or cache)")
    parser.add_argument("--out", help="output directory (default: runs/<config name>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --out"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the config)")
    add_set_option(
        parser,
        "override one setting by dotted key, value in YAML (e.g. --set generator.noise="
        "uniform --set eval.every=10); repeatable",
    )


def add_set_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The repeatable `--set KEY=VALUE` option (read with :func:`parse_sets`)."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs as overrides, each value read as YAML (`10`, `null`, `[0.8, 0.5]`)."""
    import yaml

    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set eval.every=10")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"--set {item!r}: the value is not valid YAML: {exc}") from None
    return overrides


def _check_same_run(stored: TrainConfig, given: TrainConfig, source: str) -> None:
    """Resuming is exact only with the same model, data and game: refuse other changes."""
    for key, (old, new) in changed_settings(stored, given).items():
        raise ConfigError(
            f"{source}: {key}: is {new!r} but the checkpoint was trained with "
            f"{old!r}; resume with the same configuration or choose another --out"
        )


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    """Train (or resume), then evaluate with the final Parzen settings and draw samples."""
    from gansearch.data import load_dataset

    config, out, origin = _config_and_out(args)
    checkpoint = out / CHECKPOINT
    dataset = load_dataset(config.data.name, args.data_dir, fold=config.data.fold)
    quality = None
    if config.eval.quality:
        from gansearch.quality import load_scorer

        quality = load_scorer(dataset, say=lambda text: print(text, flush=True))
    trainer = _train(args, config, dataset, quality, out, origin)
    first = int(origin["epoch"]) if origin else 0
    png, summary = _final_evaluation(trainer, config, dataset, quality, out, first)
    if origin:
        summary["origin"] = origin
    write_text(out / METRICS, json.dumps(summary, indent=2) + "\n")
    print(f"wrote {checkpoint}, {png} and {out / METRICS}", file=sys.stderr)
    return 0


def _config_and_out(
    args: argparse.Namespace,
) -> tuple[TrainConfig, Path, dict[str, Any] | None]:
    """The configuration with the command line's changes, the output directory (checked
    against --resume before anything is loaded) and, with --from, where the run comes from."""
    overrides = parse_sets(args.set)
    origin = None
    if args.source:
        origin, config, measured_quality = continued_trial(args.source, Path(args.results_dir))
        if measured_quality:  # the search measured FID: so does the run that continues it
            overrides.setdefault("eval.quality", True)
        default_out = Path("runs") / f"{origin['experiment']}-{origin['trial_id']}"
    else:
        config = load_config(args.config)
        default_out = Path("runs") / Path(args.config).stem
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.device is not None:
        overrides["device"] = args.device
    if overrides:
        stored = config
        config = apply_overrides(config, overrides, source="command line")
        if origin is not None:
            origin["changed"] = _changed_values(stored, config, args.source)
    out = Path(args.out) if args.out else default_out
    if origin and args.resume:
        _check_same_origin(out, origin)
    checkpoint = out / CHECKPOINT
    if args.resume and not checkpoint.exists():
        raise UsageError(f"--resume: no checkpoint at {checkpoint}")
    if not args.resume and checkpoint.exists():
        raise UsageError(
            f"{checkpoint} already exists: pass --resume to continue it or choose another --out"
        )
    return config, out, origin


def continued_trial(
    source: str, results_dir: Path, option: str = "--from"
) -> tuple[dict[str, Any], TrainConfig, bool]:
    """--from EXPERIMENT[/TRIAL]: where the run comes from (experiment, trial, checkpoint,
    epoch), the configuration in force in that checkpoint, and whether the search measured
    the quality metrics. EXPERIMENT is a name in --results-dir or an experiment directory."""
    from gansearch.experiment import (
        find_experiment,
        find_trial,
        has_results,
        stored_search_id,
    )
    from gansearch.space import stored_space

    head, _, tail = source.rstrip("/").rpartition("/")
    if has_results(Path(source)):  # an experiment directory
        experiment_dir, trial = Path(source).resolve(), ""
    elif head and has_results(Path(head)):  # an experiment directory and a trial
        experiment_dir, trial = Path(head).resolve(), tail
    else:  # a search's name in --results-dir, and maybe a trial
        name, _, trial = source.partition("/")
        experiment_dir = find_experiment(results_dir, name, option=option)
    row = find_trial(experiment_dir, trial or None, option=option)
    checkpoint = Path(row["checkpoint_file"])
    state = read_checkpoint(checkpoint, option=option)
    config = _stored_config(state, checkpoint)
    origin = {
        "experiment": experiment_dir.name,
        "experiment_dir": str(experiment_dir),
        "search_id": stored_search_id(experiment_dir),
        "trial_id": str(row["trial_id"]),
        "status": str(row["status"]),
        "lineage": str(row.get("lineage") or ""),
        "checkpoint": str(checkpoint),
        "epoch": int(state["epoch"]),
    }
    return origin, config, stored_space(experiment_dir).objective.needs_quality


def _check_same_origin(out: Path, origin: dict[str, Any]) -> None:
    """--resume of a --from run: it must continue the same trial's checkpoint."""
    path = out / ORIGIN
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"--resume: {path} is missing or unreadable: {out} was not started with --from"
        ) from None
    if stored.get("checkpoint") != origin["checkpoint"]:
        raise UsageError(
            f"--resume: {out} continues {stored.get('checkpoint')}, not {origin['checkpoint']}: "
            "give the same --from, or another --out"
        )


def _changed_values(stored: TrainConfig, config: TrainConfig, source: str) -> dict[str, list]:
    """--from with --set: the values that change from the trial's (key -> [old, new]); only
    those a pbt search may change mid-run, the rest would not continue the same networks."""
    changed = changed_settings(stored, config)
    fixed = [key for key in changed if key not in MUTABLE_SETTINGS]
    if fixed:
        raise UsageError(
            f"--set {', '.join(fixed)}: --from {source} continues a trained network, which "
            f"cannot change {', '.join(fixed)}; only {', '.join(MUTABLE_SETTINGS)} may change"
        )
    return {key: [old, new] for key, (old, new) in changed.items()}


def _train(
    args: argparse.Namespace,
    config: TrainConfig,
    dataset: Dataset,
    quality: QualityScorer | None,
    out: Path,
    origin: dict[str, Any] | None = None,
) -> Trainer:
    """Train to `config.epochs` (from the checkpoint with --resume, from a search trial's with
    --from), printing every epoch and keeping checkpoint.pt (every epoch), best.pt (best
    validation epoch) and, if asked, every evaluated epoch's checkpoint."""
    from gansearch.trainer import EpochMetrics, Trainer, best_epoch

    checkpoint = out / CHECKPOINT
    first = int(origin["epoch"]) if origin else 0  # the epochs this run chooses its best from
    if args.resume:
        _check_same_run(load_stored_config(checkpoint), config, str(args.config or args.source))
        trainer = Trainer.from_checkpoint(checkpoint, dataset, config=config, quality=quality)
        print(f"resuming {checkpoint} after epoch {trainer.epoch}", flush=True)
    elif origin:
        # Run settings (epochs, device, evaluation) and the --set values may differ.
        changed = origin.get("changed", {})
        trainer = Trainer.from_checkpoint(
            origin["checkpoint"], dataset, config=config, quality=quality, may_change=tuple(changed)
        )
        print(
            f"continuing trial {origin['trial_id']} of {origin['experiment']} from epoch "
            f"{trainer.epoch}, its best validation evaluation ({origin['checkpoint']})",
            flush=True,
        )
        for key, (old, new) in changed.items():
            print(f"  {key}: {old} -> {new} from epoch {trainer.epoch + 1}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / ORIGIN, json.dumps(origin, indent=2) + "\n")
        trainer.save_checkpoint(out / BEST)  # the best of this run until an epoch beats it
    else:
        trainer = Trainer(config, dataset, quality=quality)
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
        if m.fid is not None:
            valid += f"  FID {m.fid:.2f}  classes {m.classes_covered}"
        print(
            f"epoch {m.epoch}/{config.epochs}  d_loss {_fmt(m.d_loss)}  g_loss {_fmt(m.g_loss)}  "
            f"D(x) {_fmt(m.d_real, 3)}  D(G(z)) {_fmt(m.d_fake, 3)}  lr_d {m.lr_d:.5f}  "
            f"lr_g {m.lr_g:.5f}  momentum {m.momentum:.4f}{valid}  {m.seconds:.1f} s",
            flush=True,
        )
        if m.valid_ll is not None and config.eval.keep_checkpoints:
            trainer.save_checkpoint(out / f"epoch-{m.epoch:04d}.pt")
        if m.valid_ll is not None and best_epoch(_since(trainer.history, first)) is m:
            # Written before checkpoint.pt: a crash between the two leaves a best.pt at least as
            # new as the epoch a resume starts from, never an older one.
            trainer.save_checkpoint(out / BEST)
        trainer.save_checkpoint(checkpoint)

    trainer.fit(config.epochs, callback=report)
    if not checkpoint.exists():  # no epoch was trained (--epochs 0): keep the initial state
        trainer.save_checkpoint(checkpoint)
    return trainer


def _since(history: list[Any], first: int) -> list[Any]:
    """The epochs a run chooses its best from: all, or from the checkpoint --from started at."""
    return [m for m in history if m.epoch >= first]


def _final_evaluation(
    trainer: Trainer,
    config: TrainConfig,
    dataset: Dataset,
    quality: QualityScorer | None,
    out: Path,
    first: int = 0,
) -> tuple[Path, dict[str, Any]]:
    """The paper's final evaluation of the best validation epoch from epoch `first` on (else
    the last), on both sigma grids, the quality metrics if asked, and the sample grid; returns
    the grid and the summary that metrics.json holds."""
    from gansearch.evaluation import final_evaluation
    from gansearch.figures import sample_grid
    from gansearch.trainer import Trainer, best_epoch

    chosen = best_epoch(_since(trainer.history, first))
    final = trainer
    if chosen is not None and chosen.epoch != trainer.epoch:
        final = Trainer.from_checkpoint(out / BEST, dataset, config=config, quality=quality)
    which = (
        f"epoch {final.epoch} of {trainer.epoch}, the best validation log-likelihood "
        f"({chosen.valid_ll:.2f})"
        if chosen is not None
        else f"the last epoch ({trainer.epoch}; no epoch was evaluated to choose on)"
    )
    print(f"final evaluation of {which}", flush=True)
    evaluated = final_evaluation(final, seed=None, scorer=quality)  # the run's own noise stream
    _print_final(evaluated, config, dataset)
    e = config.eval
    grid_rng = torch.Generator(device=final.device).manual_seed(config.seed)
    grid = final.sample(e.grid_rows * e.grid_cols, rng=grid_rng).numpy()
    png = sample_grid(
        grid, dataset.image_shape, dataset.train, e.grid_rows, e.grid_cols, out / SAMPLES
    )
    summary = {
        "config": config_to_dict(config),
        "dataset": dataset.name,
        "epochs": [m.as_dict() for m in trainer.history],
        "final": _final_summary(evaluated, final.epoch, chosen is not None, e.final_samples),
    }
    return png, summary


def _print_final(evaluated: FinalEvaluation, config: TrainConfig, dataset: Dataset) -> None:
    """Table 1's numbers on each grid, and FID and classes covered when measured."""
    e = config.eval
    n_valid = min(e.final_n_valid or len(dataset.valid), len(dataset.valid))
    print(
        f"Parzen log-likelihood ({e.final_samples} samples, sigma chosen on {n_valid} "
        f"validation examples):"
    )
    for name, r in evaluated.grids.items():
        print(
            f"  {name} grid ({evaluated.grid_sizes[name]} sigmas): sigma {r.sigma:.4f}  "
            f"validation {r.valid_mean:.2f} ± {r.valid_se:.2f}  "
            f"test {r.test_mean:.2f} ± {r.test_se:.2f}"
        )
    if evaluated.quality is not None:
        scores = evaluated.quality.metrics()
        print(
            f"  FID {scores['fid']:.2f}  classes covered {int(scores['classes_covered'])} "
            f"(KL {scores['class_kl']:.3f})  confidence {scores['confidence']:.3f}"
        )


def _final_summary(
    evaluated: FinalEvaluation, epoch: int, chosen_on_valid: bool, samples: int
) -> dict[str, Any]:
    """metrics.json's `final`: the released grid's numbers, every grid's, and the quality."""
    released = evaluated.released
    return {
        "epoch": epoch,
        "chosen_on": "valid_ll" if chosen_on_valid else "last epoch",
        "samples": samples,
        "sigma": released.sigma,
        "valid_mean": released.valid_mean,
        "valid_se": released.valid_se,
        "test_mean": released.test_mean,
        "test_se": released.test_se,
        "grids": {
            name: {
                "sigmas": evaluated.grid_sizes[name],
                "sigma": r.sigma,
                "valid_mean": r.valid_mean,
                "valid_se": r.valid_se,
                "test_mean": r.test_mean,
                "test_se": r.test_se,
            }
            for name, r in evaluated.grids.items()
        },
        **(evaluated.quality.metrics() if evaluated.quality is not None else {}),
    }


def load_stored_config(checkpoint: Path, option: str = "--resume") -> TrainConfig:
    """The configuration stored in a trainer checkpoint."""
    return _stored_config(read_checkpoint(checkpoint, option), checkpoint)


def read_checkpoint(checkpoint: Path, option: str) -> dict[str, Any]:
    """A trainer checkpoint's contents; a UsageError naming `option` when it cannot be read."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state["config"]
    except Exception as exc:  # truncated, foreign or damaged: torch raises many types
        advice = (
            "restore it, or start over in another --out"
            if option == "--resume"
            else "choose another trial"
        )
        raise UsageError(
            f"{option}: {checkpoint} cannot be read ({type(exc).__name__}: {str(exc)[:200]}); "
            f"{advice}"
        ) from None
    return state


def _stored_config(state: dict[str, Any], checkpoint: Path) -> TrainConfig:
    from gansearch.train_config import config_from_dict

    return config_from_dict(state["config"], source=f"{checkpoint} (stored config)")
