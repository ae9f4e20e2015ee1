"""Table 1 for the best configurations of a search, logged to MLflow beside the paper's rows.

    report = make_report(ReportOptions(experiment_dir=Path("runs/digits-quick"), top=3))
    print(report.markdown)

The best `top` trials by validation log-likelihood get the paper's final evaluation: the trainer
config's `eval.final_samples` samples (10,000 by default) from the trial's best checkpoint (its
epoch with the best validation log-likelihood, which the table names; the test set chooses
nothing), drawn
with noise from `torch.Generator().manual_seed(seed)` so anyone can recompute them; sigma
cross-validated on the first `eval.final_n_valid` validation examples; the mean test
log-likelihood with its standard error. A search runs on one data set (for TFD, one fold), so a
TFD row is one fold's number with the standard error across its test examples, and says so (the
paper's is across five folds). With `retrain`, a trial that ASHA stopped early is first trained on
from its last checkpoint to the search's full epoch budget (resuming is exact, so this is the
configuration trained to its budget), and the best validation epoch of the whole run is
evaluated; the table marks those rows. A multi-objective search reports its Pareto front, which
is made of the trials' last evaluations, so there the last checkpoint is evaluated.

Where the data set has class labels (MNIST, Fashion-MNIST, digits), the same samples are also
scored by gansearch.quality's classifier (FID against the test set, classes covered and class KL,
confidence), and Table 1 gets two reference rows measured the same way (gansearch.references):
10,000 real training images, what a perfect generator would draw, and the centroids of k-means
with 10,000 clusters, blurry averages that the Parzen estimate rewards. TFD has no labels: its
quality cells read "n/a" and it has no reference rows unless asked for (Parzen only).

Each reported trial's child run gets the test metrics and its artifacts (Figure 2-style samples
with nearest training examples, Figure 3-style interpolations in z space, learning curves, the
generator's state dict, the search-space file); the parent run gets Table 1 as Markdown, CSV and
Parquet. The same files are written under `<experiment_dir>/report/`.
"""

from __future__ import annotations

import copy
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gansearch.errors import GansearchError, UsageError
from gansearch.experiment import (
    CHECKPOINT_FILE,
    SPACE_COPY,
    read_results,
    stored_search_id,
    stored_space,
    stored_tracking_uri,
)
from gansearch.files import write_text
from gansearch.tracking import ReportLogger, model_name, resolve_tracking_uri

if TYPE_CHECKING:
    import torch

    from gansearch.data.base import Dataset
    from gansearch.parzen import ParzenResult
    from gansearch.quality import QualityResult, QualityScorer
    from gansearch.references import ReferenceRow
    from gansearch.space import SearchSpace
    from gansearch.trainer import Trainer

# Files a search leaves in its experiment directory (gansearch.search writes them).
RETRAINED = "retrained.pt"  # a stopped-early trial trained on to the budget (`retrain`)
RETRAINED_BEST = "retrained-best.pt"  # its best validation epoch, when after the search's
REPORT_DIR = "report"
TABLE_NAME = "table1"

# Table 1 of the paper: model -> {dataset: (mean, standard error)}.
PAPER_TABLE: dict[str, dict[str, tuple[float, float]]] = {
    "DBN": {"mnist": (138.0, 2.0), "tfd": (1909.0, 66.0)},
    "Stacked CAE": {"mnist": (121.0, 1.6), "tfd": (2110.0, 50.0)},
    "Deep GSN": {"mnist": (214.0, 1.1), "tfd": (1890.0, 29.0)},
    "Adversarial nets": {"mnist": (225.0, 2.0), "tfd": (2057.0, 26.0)},
}
PAPER = "Goodfellow et al. (2014), Table 1"
REFERENCE = "reference"  # the `source` of the reference rows in the long table
QUALITY_FIELDS = ("fid", "classes_covered", "n_classes", "class_kl", "confidence")
DATASET_LABELS = {"mnist": "MNIST", "tfd": "TFD", "fashion_mnist": "Fashion-MNIST"}


@dataclass(frozen=True)
class ReportOptions:
    """Which search to report on and how."""

    experiment_dir: Path
    tracking_uri: str | None = None  # default: the search's store
    top: int = 3
    retrain: bool = False  # train stopped-early trials on to the full budget first
    seed: int = 0  # seeds the noise of the final samples and of the figures
    data_dir: str | None = None
    references: bool | None = None  # reference rows; None: on for data sets with class labels
    reference_samples: int = 10_000  # real training images in the "real data" row
    reference_clusters: int = 10_000  # k-means clusters in the "k-means" row
    register: bool = True  # register the best generator in the MLflow model registry


@dataclass(frozen=True)
class ReportRow:
    """One reported configuration: the paper's final evaluation of one trial."""

    rank: int
    trial_id: str
    run_id: str
    dataset: str
    fold: int | None
    status: str  # the trial's Tune outcome
    search_valid_ll: float  # best validation LL during the search (the ranking)
    epochs: int  # epochs of the evaluated generator (the best validation epoch)
    max_epochs: int
    trained_epochs: int  # epochs the trial was trained for (with `retrain`, after retraining)
    retrained: bool
    sigma: float
    valid_mean: float
    valid_se: float
    test_mean: float
    test_se: float
    n_samples: int
    n_valid: int
    n_test: int
    seed: int
    checkpoint: str
    seconds: float
    note: str
    # sigma chosen on the finer grid (`eval.fine_sigmas`), same samples and validation images.
    fine_sigma: float | None = None
    fine_test_mean: float | None = None
    fine_test_se: float | None = None
    # The classifier's view of the same samples (gansearch.quality); None without class labels.
    fid: float | None = None
    classes_covered: int | None = None
    n_classes: int | None = None
    class_kl: float | None = None
    confidence: float | None = None


@dataclass
class Report:
    """What `make_report` produced."""

    rows: list[ReportRow]
    table: pd.DataFrame  # Table 1, long format: the paper's rows and ours
    markdown: str
    directory: Path  # <experiment_dir>/report
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    references: list[ReferenceRow] = field(default_factory=list)
    registered: str | None = None  # models:/<name>/<version> of the best generator
    importance: str = ""  # which hyperparameters mattered (Markdown), "" with too few trials


# --------------------------------------------------------------------------- choosing trials


def best_trials(
    results: pd.DataFrame, top: int, metric: str = "valid_ll", mode: str = "max"
) -> pd.DataFrame:
    """The `top` trials with the best `metric` (validation log-likelihood by default) that left
    a checkpoint."""
    ok = results[metric].map(lambda v: v is not None and math.isfinite(v))
    ok &= ~results["status"].isin(["diverged", "failed"])
    ok &= results["checkpoint"].map(
        lambda c: isinstance(c, str) and (Path(c) / CHECKPOINT_FILE).exists()
    )
    ranked = results[ok].sort_values(metric, ascending=mode == "min", kind="stable")
    return ranked.head(top).reset_index(drop=True)


def pareto_trials(results: pd.DataFrame, space: SearchSpace, top: int) -> pd.DataFrame:
    """The first `top` trials of a multi-objective search's Pareto front (the `pareto` column
    of results.parquet), by the final value of the primary objective, that left a checkpoint."""
    objective = space.objective
    front = results[results["pareto"].fillna(False).astype(bool)] if "pareto" in results else None
    if front is None or front.empty:
        return results.iloc[0:0]
    return best_trials(front, top, f"final_{objective.primary}", objective.modes[0])


def pareto_table(results: pd.DataFrame, space: SearchSpace, rows: list[ReportRow]) -> pd.DataFrame:
    """The whole Pareto front: each member's final search values and parameters, and the test
    numbers of the members the report evaluated (empty for the others)."""
    objective = space.objective
    front = results[results["pareto"].fillna(False).astype(bool)]
    finals = [f"final_{m}" for m in objective.metrics]
    table = front[["trial_id", "status", "epochs", *finals, *(p.key for p in space.params)]]
    table = table.sort_values(finals[0], ascending=objective.modes[0] == "min", kind="stable")
    table = table.reset_index(drop=True)
    evaluated = {row.trial_id: row for row in rows}
    for column, name in (
        ("test_ll", "test_mean"),
        ("test_se", "test_se"),
        *((f"test_{q}", q) for q in QUALITY_FIELDS),
    ):
        table[column] = [
            getattr(evaluated[t], name) if t in evaluated else None for t in table["trial_id"]
        ]
    return table


def pareto_markdown(table: pd.DataFrame, space: SearchSpace) -> str:
    """The Pareto front as Markdown: search values, then test numbers where evaluated."""
    objective = space.objective
    header = [
        "Trial",
        *(f"{m} ({d})" for m, d in zip(objective.metrics, objective.modes, strict=True)),
    ]
    header += ["Test LL", "Test FID", "Classes", "Parameters"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.to_dict("records"):
        values = [f"{row[f'final_{m}']:.2f}" for m in objective.metrics]
        test = f"{row['test_ll']:.2f} ± {row['test_se']:.2f}" if pd.notna(row["test_ll"]) else ""
        fid = f"{row['test_fid']:.2f}" if pd.notna(row.get("test_fid")) else ""
        covered = (
            f"{int(row['test_classes_covered'])}/{int(row['test_n_classes'])}"
            if pd.notna(row.get("test_classes_covered"))
            else ""
        )
        params = ", ".join(
            f"{p.key}={row[p.key]:.4g}"
            if isinstance(row[p.key], float)
            else f"{p.key}={row[p.key]}"
            for p in space.params
        )
        lines.append(
            "| " + " | ".join([row["trial_id"], *values, test, fid, covered, params]) + " |"
        )
    lines.append("")
    lines.append(
        f"Pareto front of {len(table)} trial(s): no other trial of the search is at least as "
        "good on every objective and better on one. Objective values are each trial's last "
        "evaluation during the search (what Optuna was told); test columns are the report's "
        "final evaluation, for the members it evaluated (--top)."
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- evaluation


def seeded_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """The torch.Generator that seeds the report's noise."""
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


def final_evaluation(
    trainer: Trainer,
    seed: int,
    sigmas: tuple[float, ...] | None = None,
    samples: np.ndarray | None = None,
) -> tuple[ParzenResult, np.ndarray]:
    """The paper's protocol on `trainer`'s generator: (ParzenResult, the samples scored).

    `sigmas` replaces the configured grid (`eval.sigmas`); `samples` reuses samples drawn by an
    earlier call with the same seed instead of drawing them again.
    """
    from gansearch.parzen import evaluate

    e = trainer.config.eval
    if samples is None:
        samples = trainer.sample(e.final_samples, rng=seeded_generator(trainer.device, seed))
        samples = samples.numpy()
    config = trainer.parzen_config(e.final_n_valid, sigmas)
    dataset = trainer.dataset
    return evaluate(samples, dataset.valid, dataset.test, config=config), samples


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


# --------------------------------------------------------------------------- Table 1


def table1(rows: list[ReportRow], references: Sequence[Any] = ()) -> pd.DataFrame:
    """Table 1 in long format: one row per (model, data set): the paper's, the reference rows
    (gansearch.references.ReferenceRow), then ours; quality columns are empty where unknown."""
    records: list[dict[str, Any]] = []
    for model, cells in PAPER_TABLE.items():
        for dataset, (mean, se) in cells.items():
            records.append(
                {"source": PAPER, "model": model, "dataset": dataset, "test_ll": mean, "se": se}
            )
    for ref in references:
        records.append(
            {
                "source": REFERENCE,
                "model": ref.label,
                "dataset": ref.dataset,
                "test_ll": ref.test_mean,
                "se": ref.test_se,
                "kind": ref.kind,
                "n_samples": ref.n,
                "sigma": ref.sigma,
                "valid_mean": ref.valid_mean,
                "valid_se": ref.valid_se,
                **{k: getattr(ref, k) for k in QUALITY_FIELDS},
                "seconds": ref.seconds,
                "note": ref.note,
            }
        )
    for row in rows:
        records.append(
            {
                "source": "gansearch",
                "model": f"Adversarial nets, trial {row.trial_id} (#{row.rank})",
                "dataset": row.dataset,
                "test_ll": row.test_mean,
                "se": row.test_se,
                **{k: v for k, v in asdict(row).items() if k not in ("test_mean", "test_se")},
            }
        )
    return pd.DataFrame.from_records(records)


def table1_markdown(rows: list[ReportRow], references: Sequence[Any] = ()) -> str:
    """Table 1 laid out as in the paper (a column per data set), then the reference rows, our
    rows, and the quality columns (FID, classes covered, confidence) of the searched data set."""
    ours = {r.dataset for r in rows} | {r.dataset for r in references}
    datasets = ["mnist", "tfd"] + sorted(ours - {"mnist", "tfd"})
    header = ["Model", *(DATASET_LABELS.get(d, d) for d in datasets)]
    header += ["FID", "Classes covered (KL)", "Confidence", "Notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, cells in PAPER_TABLE.items():
        values = [_cell(*cells[d], paper=True) if d in cells else "" for d in datasets]
        lines.append("| " + " | ".join([model, *values, "", "", "", "the paper"]) + " |")
    for ref in references:
        values = [_cell(ref.test_mean, ref.test_se) if d == ref.dataset else "" for d in datasets]
        name = f"Reference: {ref.label}"
        lines.append("| " + " | ".join([name, *values, *_quality_cells(ref), ref.note]) + " |")
    for row in rows:
        values = [_cell(row.test_mean, row.test_se) if d == row.dataset else "" for d in datasets]
        name = f"gansearch #{row.rank}: trial {row.trial_id}"
        lines.append("| " + " | ".join([name, *values, *_quality_cells(row), row.note]) + " |")
    lines.append("")
    lines.append(
        "Parzen-window test log-likelihood (higher is better), mean ± standard error. Our rows: "
        "each configuration's generator at its best validation epoch, samples seeded as noted, "
        "sigma cross-validated on the validation set over the released script's 10-value grid "
        "(the notes add the same samples scored with sigma from a 101-value grid over the same "
        "range). Only numbers in the same column are comparable."
    )
    if any(r.fid is not None for r in [*rows, *references]):
        lines.append("")
        lines.append(
            "Quality columns (the searched data set), from a classifier trained on its training "
            "split: FID, the Fréchet distance between the classifier's features of the samples "
            "and of the test set (lower is better; biased upwards for fewer samples, so compare "
            "rows with as many samples); classes covered, those that get at least a tenth of "
            "their test-set share, with KL(samples ‖ test) of the class histograms in nats; "
            "confidence, the classifier's mean top class probability (blur lowers it)."
        )
    elif rows:
        lines.append("")
        lines.append(
            f"Quality columns n/a: {rows[0].dataset} has no class labels, so there is no "
            "classifier to compute FID, mode coverage and confidence with."
        )
    note = reference_note(references)
    if note:
        lines.append("")
        lines.append(note)
    return "\n".join(lines) + "\n"


def reference_note(references: Sequence[Any]) -> str:
    """What the reference rows mean, in their own measured numbers ("" without both rows)."""
    by_kind = {r.kind: r for r in references}
    real, kmeans = by_kind.get("real"), by_kind.get("kmeans")
    if real is None or kmeans is None:
        return ""
    text = (
        f"Reference rows, measured exactly as ours: {real.n:,} real training images are what a "
        f"perfect generator would draw, so a Parzen score far above their {real.test_mean:.2f} "
        f"nats means blur, not a better generator. The {kmeans.n:,} k-means centroids are "
        f"blurry averages of training images: Parzen scores them at {kmeans.test_mean:.2f}, "
        f"{'above' if kmeans.test_mean > real.test_mean else 'below'} real data"
    )
    if real.fid is None or kmeans.fid is None:
        return text + "."
    text += (
        f"; FID gives them {kmeans.fid:.2f} (real data {real.fid:.2f}), confidence "
        f"{kmeans.confidence:.3f} ({real.confidence:.3f}), {kmeans.classes_covered} of "
        f"{kmeans.n_classes} classes ({real.classes_covered})"
    )
    worse = [
        name
        for name, lower in (
            ("FID", kmeans.fid > real.fid),
            ("confidence", kmeans.confidence < real.confidence),
            ("coverage", kmeans.classes_covered < real.classes_covered),
        )
        if lower
    ]
    if worse:
        verb = "ranks" if len(worse) == 1 else "rank"
        return f"{text}: {' and '.join(worse)} {verb} them below real data."
    return f"{text}: at these sizes none of them ranks them below real data."


def _quality_cells(row: Any) -> list[str]:
    if row.fid is None:
        return ["n/a", "n/a", "n/a"]
    return [
        f"{row.fid:.2f}",
        f"{row.classes_covered}/{row.n_classes} ({row.class_kl:.3f})",
        f"{row.confidence:.3f}",
    ]


def _cell(mean: float, se: float, paper: bool = False) -> str:
    if paper:  # as printed in the paper: 138 ± 2, 121 ± 1.6, 1909 ± 66
        return f"{mean:g} ± {se:g}"
    return f"{mean:.2f} ± {se:.2f}"


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class _Context:
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


def comparability(dataset: str, fold: int | None) -> str | None:
    """Why a row of this data set is not directly comparable with the paper's column, if so."""
    if dataset == "tfd":
        return f"TFD fold {fold} only: SE across test examples (the paper's is across 5 folds)"
    if dataset not in PAPER_TABLE["DBN"]:
        return f"{dataset}: not comparable with the paper's columns"
    return None


def make_report(options: ReportOptions, say: Callable[[str], None] | None = None) -> Report:
    """Evaluate the best trials of a finished search, write Table 1 and log it all to MLflow."""
    from gansearch.data import load_dataset

    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    if options.top < 1:
        raise UsageError(f"--top must be >= 1, got {options.top}")
    experiment_dir = Path(options.experiment_dir).resolve()
    space = stored_space(experiment_dir)
    results = read_results(experiment_dir)
    chosen = choose_trials(results, space, options.top)
    if chosen.empty:
        raise GansearchError(
            f"{experiment_dir}: no trial has a validation log-likelihood and a "
            "checkpoint to report on"
        )
    uri = resolve_tracking_uri(
        options.tracking_uri, experiment_dir.parent, stored_tracking_uri(experiment_dir)
    )
    mlflow_log = ReportLogger.open(uri, experiment_dir, stored_search_id(experiment_dir))
    data = space.trainer.data
    dataset = load_dataset(data.name, options.data_dir, fold=data.fold)
    multi = space.objective.multi
    say(
        "report: final Parzen evaluation of the "
        + ("first " if multi else "best ")
        + f"{len(chosen)} of {len(results)} trials of {experiment_dir.name}"
        + (" on the Pareto front" if multi else "")
        + f" (seed {options.seed}); MLflow: {uri}"
    )
    context = _Context(
        experiment_dir=experiment_dir,
        space=space,
        dataset=dataset,
        scorer=_quality_scorer(dataset, say),
        mlflow=mlflow_log,
        seed=options.seed,
        retrain=options.retrain,
        say=say,
    )
    trials = chosen.to_dict("records")
    rows = [
        report_configuration(context, rank, trial, len(trials))
        for rank, trial in enumerate(trials, start=1)
    ]
    references = _references(context, options)
    table, markdown, files = write_table1(context, rows, references, results)
    files["importance"], importance_text = write_importances(context, results)
    registered = None
    if options.register:
        version = mlflow_log.register(model_name(experiment_dir.name), rows[0].run_id)
        registered = f"models:/{model_name(experiment_dir.name)}/{version}"
        say(f"report: registered trial {rows[0].trial_id}'s generator as {registered}")
    best = rows[0]
    mlflow_log.log_table(
        files,
        {
            "best_test_ll": best.test_mean,
            "best_test_ll_se": best.test_se,
            **{
                f"reference_{ref.kind}_{name}": value
                for ref in references
                for name, value in ref.metrics().items()
            },
        },
        {
            "gansearch.report": f"top {len(rows)}, seed {options.seed}",
            "gansearch.best_test_trial": best.trial_id,
            **({"gansearch.registered_model": registered} if registered else {}),
        },
    )
    return Report(
        rows=rows,
        table=table,
        markdown=markdown,
        directory=context.out_dir,
        tracking_uri=uri,
        experiment_id=mlflow_log.experiment_id,
        parent_run_id=mlflow_log.parent_run_id,
        references=references,
        registered=registered,
        importance=importance_text,
    )


def choose_trials(results: pd.DataFrame, space: SearchSpace, top: int) -> pd.DataFrame:
    """The trials to report on: the Pareto front's first `top` for several objectives, else
    the best `top` by the objective (validation log-likelihood when it is not a column)."""
    objective = space.objective
    if objective.multi:
        return pareto_trials(results, space, top)
    if objective.primary in results:
        return best_trials(results, top, objective.primary, objective.modes[0])
    return best_trials(results, top)


def report_configuration(context: _Context, rank: int, trial: dict[str, Any], of: int) -> ReportRow:
    """One configuration's row of Table 1: evaluate its generator with the paper's protocol,
    write its figures and generator, and log them and the test numbers on its MLflow run."""
    started = time.perf_counter()
    trial_id = str(trial["trial_id"])
    folder = context.out_dir / trial_id
    folder.mkdir(parents=True, exist_ok=True)
    trainer, checkpoint, history, provenance = _evaluated_generator(context, rank, trial, folder)
    result, samples = final_evaluation(trainer, context.seed)
    fine, _ = final_evaluation(
        trainer, context.seed, sigmas=trainer.config.eval.fine_sigmas, samples=samples
    )
    scorer = context.scorer
    quality = scorer.score(samples, f"trial {trial_id}") if scorer is not None else None
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
            "gansearch.report_rank": str(rank),
            "gansearch.report_seed": str(context.seed),
            "gansearch.retrained": str(provenance.retrained).lower(),
            "gansearch.report_note": note,
        },
        files=files,
    )
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


def _evaluated_generator(
    context: _Context, rank: int, trial: dict[str, Any], folder: Path
) -> tuple[Trainer, Path, list[Any], Provenance]:
    """The trainer to evaluate (at the trial's best validation epoch, or its last for a
    Pareto front member), its checkpoint, the history of the whole run for the learning
    curves, and where the epoch sits in the run. With `retrain`, a stopped-early trial is
    first trained on to the budget."""
    from gansearch.trainer import Trainer

    max_epochs = context.space.budget.max_epochs
    latest = Path(trial["checkpoint"]) / CHECKPOINT_FILE
    best = trial.get("best_checkpoint")  # absent in results of older versions
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
    context: _Context,
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


def _references(context: _Context, options: ReportOptions) -> list[ReferenceRow]:
    """The real-data and k-means reference rows, measured with the search's final protocol
    (on by default where the data set has class labels)."""
    if options.references is False or (options.references is None and context.scorer is None):
        return []
    from gansearch.references import reference_rows
    from gansearch.trainer import parzen_protocol

    trainer_config = context.space.trainer
    return reference_rows(
        context.dataset,
        context.scorer,
        n_samples=options.reference_samples,
        n_clusters=options.reference_clusters,
        parzen=parzen_protocol(trainer_config, trainer_config.eval.final_n_valid),
        say=lambda text: context.say(f"report: {text}"),
    )


def write_table1(
    context: _Context,
    rows: list[ReportRow],
    references: list[ReferenceRow],
    results: pd.DataFrame,
) -> tuple[pd.DataFrame, str, dict[str, list[Path]]]:
    """Table 1 as Markdown, CSV and Parquet in the report folder (and the Pareto front of a
    multi-objective search); returns the table, its Markdown and the files by MLflow folder."""
    out_dir = context.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    table = table1(rows, references)
    markdown = table1_markdown(rows, references)
    pareto_files: list[Path] = []
    if context.space.objective.multi:
        pareto_files = _write_pareto(
            results, context.space, rows, out_dir, context.experiment_dir.name
        )
        markdown += "\n## Pareto front\n\n" + pareto_files[0].read_text(encoding="utf-8")
    files = [out_dir / f"{TABLE_NAME}.{suffix}" for suffix in ("md", "csv", "parquet")]
    write_text(files[0], markdown)
    table.to_csv(files[1], index=False)
    table.to_parquet(files[2], index=False)
    return table, markdown, {"table1": files, "pareto": pareto_files}


def write_importances(context: _Context, results: pd.DataFrame) -> tuple[list[Path], str]:
    """Which hyperparameters mattered (gansearch.importance): importance.md, .csv and .png in
    the report folder; returns the files and the Markdown ("" and none with under 2 trials)."""
    from gansearch.figures import importance_plot
    from gansearch.importance import importance_markdown, importances

    found = importances(results, context.space, seed=context.seed)
    if found.table.empty:
        context.say("report: fewer than 2 trials measured the objective: no importances")
        return [], ""
    if found.warning:
        context.say(f"report: hyperparameter importances: {found.warning}")
    out = context.out_dir
    markdown = importance_markdown(found)
    files = [out / "importance.md", out / "importance.csv", out / "importance.png"]
    write_text(files[0], markdown)
    found.table.to_csv(files[1], index=False)
    importance_plot(
        found.table,
        files[2],
        f"{context.experiment_dir.name}: which hyperparameters mattered ({found.n_trials} trials)",
    )
    return files, markdown


def _write_pareto(
    results: pd.DataFrame, space: SearchSpace, rows: list[ReportRow], out_dir: Path, name: str
) -> list[Path]:
    """pareto.md, pareto.csv and pareto.png (every trial's final objectives, front marked)."""
    from gansearch.figures import pareto_plot

    objective = space.objective
    front = pareto_table(results, space, rows)
    files = [out_dir / "pareto.md", out_dir / "pareto.csv"]
    write_text(files[0], pareto_markdown(front, space))
    front.to_csv(files[1], index=False)
    usable = results[~results["status"].isin(["diverged", "failed"])]
    finals = usable[[f"final_{m}" for m in objective.metrics]].to_numpy(dtype=float)
    files.append(
        pareto_plot(
            finals,
            usable["pareto"].fillna(False).astype(bool).to_numpy(),
            usable["trial_id"].astype(str).tolist(),
            objective.metrics,
            objective.modes,
            out_dir / "pareto.png",
            f"{name}: {len(usable)} trials, Pareto front of {len(front)}",
        )
    )
    return files


def _quality_scorer(dataset: Dataset, say: Callable[[str], None]) -> QualityScorer | None:
    """The data set's classifier (trained and cached the first time); None without labels."""
    from gansearch.quality import load_scorer

    if dataset.train_labels is None or dataset.test_labels is None:
        say(f"report: {dataset.name} has no class labels: no FID, mode coverage or confidence")
        return None
    scorer = load_scorer(dataset, say=lambda text: say(f"report: {text}"))
    say(
        f"report: quality metrics from the {dataset.name} classifier (test accuracy "
        f"{scorer.test_accuracy:.2%}, {scorer.path})"
    )
    return scorer


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
        for name in ("fid", "classes_covered", "class_kl", "confidence"):
            values[f"test_{name}"] = getattr(quality, name)
    return values


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
    done = Trainer.from_checkpoint(path, dataset) if path.exists() else None
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


def format_report(report: Report) -> str:
    """Table 1 and where everything went, for people."""
    importance = (
        f"\n## Which hyperparameters mattered\n\n{report.importance}" if report.importance else ""
    )
    registered = (
        f"\nBest generator: {report.registered} (load it with mlflow.pytorch.load_model; "
        "sample with `gansearch sample`)"
        if report.registered
        else ""
    )
    return (
        f"{report.markdown}{importance}\nTable 1 and figures: {report.directory}\n"
        f"MLflow: {report.tracking_uri} (experiment {report.experiment_id}, "
        f"parent run {report.parent_run_id}){registered}"
    )
