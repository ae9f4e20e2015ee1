"""One configuration's report: the paper's final evaluation of a trial's generator, its figures
and files, and its MLflow run (through gansearch.tracking's ReportLogger).

The evaluation: `eval.final_samples` samples from the trial's best checkpoint (its epoch with the
best validation log-likelihood; the test set chooses nothing), or from its last for a Pareto
front member, whose objectives are its last evaluations; noise from
`torch.Generator().manual_seed(seed)`, so anyone can recompute them; sigma cross-validated on the
first `eval.final_n_valid` validation examples; the mean test log-likelihood with its standard
error. With `retrain`, a trial that ASHA stopped early is first trained on to the search's epoch
budget (resuming is exact).

A configuration whose checkpoint cannot be read or evaluated (truncated, foreign or crafted: it
is loaded with weights_only=True, so it can run no code) is skipped, with the reason, by
`row_or_skipped`; the other configurations are reported all the same.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gansearch.errors import GansearchError, first_line
from gansearch.evaluation import final_evaluation, seeded_generator
from gansearch.experiment import CHECKPOINT_FILE, SPACE_COPY
from gansearch.report.table import QUALITY_FIELDS, ReportRow, comparability
from gansearch.tracking import TAG_REPORT_RANK, TrackingError

if TYPE_CHECKING:
    import numpy as np

    from gansearch.data.base import Dataset
    from gansearch.parzen import ParzenResult
    from gansearch.quality import QualityResult, QualityScorer
    from gansearch.space import SearchSpace
    from gansearch.tracking import ReportLogger
    from gansearch.trainer import Trainer

REPORT_DIR = "report"  # the report's folder in the experiment directory
# In a configuration's folder there, with `retrain`:
RETRAINED = "retrained.pt"  # a stopped-early trial trained on to the budget
RETRAINED_BEST = "retrained-best.pt"  # its best validation epoch, when after the search's


@dataclass(frozen=True)
class ReportContext:
    """What every reported configuration shares: the search, its data and where output goes."""

    experiment_dir: Path
    space: SearchSpace
    dataset: Dataset
    scorer: QualityScorer | None
    mlflow: ReportLogger
    seed: int
    retrain: bool
    say: Callable[[str], None]

    @property
    def out_dir(self) -> Path:
        return self.experiment_dir / REPORT_DIR


@dataclass(frozen=True)
class Provenance:
    """Where an evaluated generator sits in its trial's run, for the table's notes."""

    epoch: int  # the evaluated epoch
    trained: int  # epochs the trial was trained for (after retraining, if any)
    searched: int  # epochs it trained during the search
    max_epochs: int  # the search's budget per trial
    retrained: bool

    def describe(self) -> str:
        if self.epoch == self.trained:
            parts = [f"epoch {self.epoch} (the last) of {self.max_epochs}"]
        else:
            parts = [
                f"epoch {self.epoch} (best validation LL) of {self.trained} trained, "
                f"{self.max_epochs} max"
            ]
        if self.retrained:
            parts.append(f"stopped early at {self.searched}, retrained to {self.trained}")
        elif self.trained < self.max_epochs:
            parts.append("stopped early, not retrained")
        return "; ".join(parts)


@dataclass(frozen=True)
class Skipped:
    """A chosen configuration that the report could not evaluate, and why."""

    rank: int
    trial_id: str
    reason: str

    def describe(self) -> str:
        return f"#{self.rank}, trial {self.trial_id}: {self.reason}"


def row_or_skipped(
    context: ReportContext, rank: int, trial: dict[str, Any], of: int
) -> ReportRow | Skipped:
    """`table_one_row`, or what kept it from being reported: a checkpoint that cannot be read
    or evaluated costs its own configuration, never the rest. A tracking store that fails
    (TrackingError) still ends the report."""
    trial_id = str(trial["trial_id"])
    try:
        return table_one_row(context, rank, trial, of)
    except TrackingError:
        raise
    except GansearchError as exc:
        skipped = Skipped(rank, trial_id, first_line(exc))
        folder = context.out_dir / trial_id
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # nothing was written for it
        context.say(f"report {rank}/{of}: skipped trial {trial_id}: {skipped.reason}")
        return skipped


def table_one_row(context: ReportContext, rank: int, trial: dict[str, Any], of: int) -> ReportRow:
    """One configuration's row of Table 1: evaluate its generator with the paper's protocol,
    write its figures and generator, and log them and the test numbers on its MLflow run."""
    started = time.perf_counter()
    trial_id = str(trial["trial_id"])
    folder = context.out_dir / trial_id
    folder.mkdir(parents=True, exist_ok=True)
    trainer, checkpoint, history, provenance = _evaluated_generator(context, rank, trial, folder)
    final = final_evaluation(trainer, context.seed, context.scorer, f"trial {trial_id}")
    result, fine, samples, quality = final.released, final.fine, final.samples, final.quality
    files = _write_trial_files(context, trainer, samples, history, provenance, folder, trial_id)
    notes = [
        f"{len(samples)} samples, seed {context.seed}",
        f"fine sigma grid: {fine.test_mean:.2f} ± {fine.test_se:.2f} (sigma {fine.sigma:.4f})",
        provenance.describe(),
    ]
    data = context.space.trainer.data
    fold = data.fold if data.name == "tfd" else None
    caveat = comparability(context.dataset.name, fold)
    note = "; ".join(notes + ([caveat] if caveat else []))
    run_id = context.mlflow.log_trial(
        trial_id=trial_id,
        status=str(trial["status"]),
        params={p.key: trial.get(p.key) for p in context.space.params},
        metrics=_test_metrics(result, fine, quality),
        step=trainer.epoch,
        tags={
            TAG_REPORT_RANK: str(rank),
            "gansearch.report_seed": str(context.seed),
            "gansearch.retrained": str(provenance.retrained).lower(),
            "gansearch.report_note": note,
        },
        files=files,
    )
    _log_generator(context, run_id, trainer, trial_id)
    e = trainer.config.eval
    row = ReportRow(
        rank=rank,
        trial_id=trial_id,
        run_id=run_id,
        dataset=context.dataset.name,
        fold=fold,
        status=str(trial["status"]),
        search_valid_ll=float(trial["valid_ll"]),
        epochs=provenance.epoch,
        max_epochs=provenance.max_epochs,
        trained_epochs=provenance.trained,
        retrained=provenance.retrained,
        sigma=result.sigma,
        valid_mean=result.valid_mean,
        valid_se=result.valid_se,
        test_mean=float(result.test_mean),
        test_se=float(result.test_se),
        fine_sigma=fine.sigma,
        fine_test_mean=float(fine.test_mean),
        fine_test_se=float(fine.test_se),
        n_samples=int(result.n_samples),
        n_valid=min(len(context.dataset.valid), e.final_n_valid or len(context.dataset.valid)),
        n_test=len(context.dataset.test),
        seed=context.seed,
        checkpoint=str(checkpoint),
        seconds=time.perf_counter() - started,
        note=note,
        **{k: getattr(quality, k) for k in QUALITY_FIELDS if quality is not None},
    )
    context.say(
        f"report {rank}/{of}: trial {trial_id} (epoch {row.epochs} of {row.trained_epochs}"
        f"{', retrained' if row.retrained else ''}): test log-likelihood {row.test_mean:.2f} ± "
        f"{row.test_se:.2f} (sigma {row.sigma:.4f}, {row.n_samples} samples)"
        + ("" if row.fid is None else f", FID {row.fid:.2f}")
        + f" in {row.seconds:.1f} s"
    )
    return row


def _log_generator(context: ReportContext, run_id: str, trainer: Trainer, trial_id: str) -> None:
    """The configuration's generator as an MLflow model on its run, with what drawing from it
    needs to know in its metadata."""
    context.mlflow.log_generator(
        run_id,
        copy.deepcopy(trainer.generator).cpu(),
        trainer.noise_spec,
        {
            "image_shape": list(context.dataset.image_shape),
            "dataset": context.dataset.name,
            "experiment": context.experiment_dir.name,
            "trial_id": trial_id,
            "epoch": trainer.epoch,
            "pixels": "[0, 1]",
        },
    )


def _evaluated_generator(
    context: ReportContext, rank: int, trial: dict[str, Any], folder: Path
) -> tuple[Trainer, Path, list[Any], Provenance]:
    """The trainer to evaluate (at the trial's best validation epoch, or its last for a
    Pareto front member), its checkpoint, the history of the whole run for the learning
    curves, and where the epoch sits in the run. With `retrain`, a stopped-early trial is
    first trained on to the budget."""
    from gansearch.trainer import Trainer

    max_epochs = context.space.budget.max_epochs
    latest = Path(trial["checkpoint"]) / CHECKPOINT_FILE
    best = trial.get("best_checkpoint")  # None when the trial kept no scored checkpoint
    use_best = isinstance(best, str) and not context.space.objective.multi
    checkpoint = Path(best) / CHECKPOINT_FILE if use_best else latest
    trainer = Trainer.from_checkpoint(latest, context.dataset)
    searched = trainer.epoch
    retrained, current = False, latest  # `current`: the checkpoint `trainer` holds
    if context.retrain and trainer.epoch < max_epochs:
        trainer, checkpoint = _retrain(
            trainer,
            folder,
            max_epochs,
            context.dataset,
            context.say,
            rank,
            checkpoint if use_best else None,
        )
        retrained, current = True, folder / RETRAINED
    history, trained = trainer.history, trainer.epoch
    if checkpoint != current:
        trainer = Trainer.from_checkpoint(checkpoint, context.dataset)
    provenance = Provenance(trainer.epoch, trained, searched, max_epochs, retrained)
    return trainer, checkpoint, history, provenance


def _write_trial_files(
    context: ReportContext,
    trainer: Trainer,
    samples: np.ndarray,
    history: list[Any],
    provenance: Provenance,
    folder: Path,
    trial_id: str,
) -> list[Path]:
    """Figure 2-style samples, Figure 3-style interpolations, learning curves, the generator's
    state dict and the search-space file, in the configuration's report folder."""
    import torch

    from gansearch.figures import sample_grid

    e, dataset = trainer.config.eval, context.dataset
    rows, cols = e.grid_rows, e.grid_cols
    files = [
        sample_grid(
            samples[: rows * cols],
            dataset.image_shape,
            dataset.train,
            rows,
            cols,
            folder / "samples.png",
        ),
        sample_grid(
            interpolations(trainer, rows, cols, context.seed),
            dataset.image_shape,
            None,
            rows,
            cols,
            folder / "interpolations.png",
        ),
        learning_curves(
            history,
            folder / "learning_curves.png",
            f"{context.experiment_dir.name}: trial {trial_id}",
            provenance.searched if provenance.retrained else None,
            chosen=provenance.epoch,
        ),
    ]
    torch.save(trainer.generator.state_dict(), folder / "generator.pt")
    shutil.copyfile(context.experiment_dir / SPACE_COPY, folder / SPACE_COPY)
    return [*files, folder / "generator.pt", folder / SPACE_COPY]


def _retrain(
    trainer: Trainer,
    folder: Path,
    max_epochs: int,
    dataset: Dataset,
    say: Callable[[str], None],
    rank: int,
    best: Path | None,
) -> tuple[Trainer, Path]:
    """Train a stopped-early trial on to `max_epochs`; reuses an earlier report's result.

    Returns the retrained trainer and the checkpoint to evaluate: with `best` (the search's
    best-validation checkpoint) the best validation epoch of the whole run, kept as
    retrained-best.pt when a retrained epoch beats the search's; otherwise the last epoch.
    """
    from gansearch.trainer import Trainer, best_epoch

    path, best_path = folder / RETRAINED, folder / RETRAINED_BEST
    searched = list(trainer.history)
    done = None
    if path.exists():
        try:
            done = Trainer.from_checkpoint(path, dataset)
        except GansearchError as exc:
            say(f"report {rank}: not reusing {path}: {first_line(exc)}")
    if done is not None and done.epoch == max_epochs and done.history[: len(searched)] == searched:
        say(f"report {rank}: reusing {path} ({max_epochs} epochs)")
        trainer = done
    else:
        say(f"report {rank}: retraining from epoch {trainer.epoch} to {max_epochs}")
        best_path.unlink(missing_ok=True)

        def progress(m: Any) -> None:
            say(
                f"report {rank}:   epoch {m.epoch}/{max_epochs}"
                + (f" valid LL {m.valid_ll:.2f}" if m.valid_ll is not None else "")
            )
            if m.valid_ll is not None and best_epoch(trainer.history) is m:
                trainer.save_checkpoint(best_path)

        trainer.fit(max_epochs, callback=progress)
        trainer.save_checkpoint(path)
    if best is None:
        return trainer, path
    chosen = best_epoch(trainer.history)
    if chosen is not None and chosen.epoch > len(searched) and best_path.exists():
        return trainer, path if chosen.epoch == trainer.epoch else best_path
    return trainer, best


def _test_metrics(
    result: ParzenResult, fine: ParzenResult, quality: QualityResult | None
) -> dict[str, float]:
    """A reported trial's MLflow metrics: the Table 1 numbers and the quality metrics."""
    values = {
        "test_ll": float(result.test_mean),
        "test_ll_se": float(result.test_se),
        "test_sigma": result.sigma,
        "test_ll_fine": float(fine.test_mean),
        "test_ll_fine_se": float(fine.test_se),
        "test_sigma_fine": fine.sigma,
        "final_valid_ll": result.valid_mean,
        "final_valid_se": result.valid_se,
        "final_samples": result.n_samples,
    }
    if quality is not None:
        values.update({f"test_{name}": value for name, value in quality.metrics().items()})
    return values


def interpolations(trainer: Trainer, rows: int, steps: int, seed: int) -> np.ndarray:
    """Figure 3: G along straight lines between `rows` random pairs of z, `steps` points each.

    Returns (rows * steps, d) images, row-major.
    """
    import torch

    rng = seeded_generator(trainer.device, seed + 1)
    z = trainer.noise(2 * rows, rng).reshape(rows, 2, -1)
    t = torch.linspace(0.0, 1.0, steps, device=trainer.device)[None, :, None]
    line = (1 - t) * z[:, :1] + t * z[:, 1:]  # (rows, steps, noise_dim)
    trainer.generator.eval()
    try:
        with torch.no_grad():
            images = trainer.generator(line.reshape(rows * steps, -1)).cpu().numpy()
    finally:
        trainer.generator.train()
    return images


def learning_curves(
    history: list[Any],
    path: Path,
    title: str,
    stopped_at: int | None,
    chosen: int | None = None,
) -> Path:
    """Losses, D outputs and validation log-likelihood against epoch, as a PNG (Agg);
    `chosen` marks the epoch whose checkpoint Table 1 evaluates."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [m.epoch for m in history]
    figure = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    losses, outputs, ll = figure.subplots(1, 3)
    losses.plot(epochs, [m.d_loss for m in history], label="D loss")
    losses.plot(epochs, [m.g_loss for m in history], label="G loss")
    outputs.plot(epochs, [m.d_real for m in history], label="D(x)")
    outputs.plot(epochs, [m.d_fake for m in history], label="D(G(z))")
    evaluated = [m for m in history if m.valid_ll is not None]
    ll.errorbar(
        [m.epoch for m in evaluated],
        [m.valid_ll for m in evaluated],
        yerr=[m.valid_se or 0.0 for m in evaluated],
        marker="o",
        markersize=3,
        label="validation LL",
    )
    for axes, label in ((losses, "loss"), (outputs, "mean output"), (ll, "Parzen log-likelihood")):
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        if stopped_at is not None:
            axes.axvline(stopped_at, color="grey", linestyle=":", label="search stopped")
        if chosen is not None:
            axes.axvline(chosen, color="tab:red", linestyle="--", label="evaluated epoch")
        axes.legend(fontsize="small")
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return path
