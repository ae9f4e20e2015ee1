"""`gansearch report`: Table 1 for the best configurations of a finished search, logged to
MLflow beside the paper's rows.

    report = make_report(ReportOptions(experiment_dir=Path("runs/digits-quick"), top=3))
    print(report.markdown)

Where the data set has class labels (MNIST, Fashion-MNIST, digits), the samples are also scored by
gansearch.quality's classifier (FID against the test set, classes covered and class KL,
confidence), and Table 1 gets two reference rows measured the same way (gansearch.references):
real training images, what a perfect generator would draw, and k-means centroids, blurry
averages that the Parzen estimate rewards. Each reported trial's child run gets its test metrics
and artifacts; the parent run gets Table 1 as Markdown, CSV and Parquet, the hyperparameter
importances and, for several objectives, the Pareto front. The same files are written under
`<experiment_dir>/report/`.

A configuration whose checkpoint cannot be read or evaluated is skipped: Table 1's Markdown, the
printed report and the parent run's `gansearch.report_skipped` tag name it and say why. The
report fails only when no configuration could be reported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gansearch.errors import GansearchError, UsageError
from gansearch.experiment import read_results, stored_search_id, stored_tracking_uri
from gansearch.files import write_text
from gansearch.report.choose import choose_trials
from gansearch.report.configuration import ReportContext, Skipped, row_or_skipped
from gansearch.report.pareto import write_pareto
from gansearch.report.table import TABLE_NAME, ReportRow, table1, table1_markdown
from gansearch.space import stored_space
from gansearch.tracking import ReportLogger, model_name, resolve_tracking_uri

if TYPE_CHECKING:
    import pandas as pd

    from gansearch.data.base import Dataset
    from gansearch.quality import QualityScorer
    from gansearch.references import ReferenceRow

TAG_SKIPPED = "gansearch.report_skipped"  # on the parent run: the configurations left out, why


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
    skipped: list[Skipped] = field(default_factory=list)  # chosen but not evaluable, and why


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
    context = ReportContext(
        experiment_dir=experiment_dir,
        space=space,
        dataset=dataset,
        scorer=_report_quality_scorer(dataset, say),
        mlflow=mlflow_log,
        seed=options.seed,
        retrain=options.retrain,
        say=say,
    )
    trials = chosen.to_dict("records")
    rows: list[ReportRow] = []
    skipped: list[Skipped] = []
    for rank, trial in enumerate(trials, start=1):
        done = row_or_skipped(context, rank, trial, len(trials))
        if isinstance(done, Skipped):
            skipped.append(done)
        else:
            rows.append(done)
    if not rows:
        reasons = "; ".join(s.describe() for s in skipped)
        mlflow_log.tag_search({TAG_SKIPPED: _truncate(f"all {len(skipped)}: {reasons}")})
        raise GansearchError(
            f"{experiment_dir}: none of the {len(skipped)} chosen configurations could be "
            f"reported: {reasons}"
        )
    references = _references(context, options)
    table, markdown, files = write_table1(context, rows, references, results, skipped)
    files["importance"], importance_text = write_importances(context, results)
    registered = _log_search_run(context, options, rows, references, files, skipped)
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
        skipped=skipped,
    )


def skipped_markdown(skipped: list[Skipped]) -> str:
    """The section of Table 1's Markdown that names the configurations left out and why
    ("" when none was)."""
    if not skipped:
        return ""
    lines = [f"- {s.describe()}" for s in skipped]
    return "\n## Skipped configurations\n\n" + "\n".join(lines) + "\n"


def _truncate(text: str, limit: int = 5000) -> str:
    """An MLflow tag value: at most `limit` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _log_search_run(
    context: ReportContext,
    options: ReportOptions,
    rows: list[ReportRow],
    references: list[ReferenceRow],
    files: dict[str, list[Path]],
    skipped: list[Skipped],
) -> str | None:
    """Register the best generator (with `register`) and log Table 1's files, the best test
    numbers and the reference rows' metrics on the search's parent run; returns the registered
    model's models:/ URI, if any."""
    mlflow_log, model = context.mlflow, model_name(context.experiment_dir.name)
    registered = None
    if options.register:
        version = mlflow_log.register(model, rows[0].run_id)
        registered = f"models:/{model}/{version}"
        context.say(f"report: registered trial {rows[0].trial_id}'s generator as {registered}")
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
            TAG_SKIPPED: _truncate("; ".join(s.describe() for s in skipped) or "none"),
            **({"gansearch.registered_model": registered} if registered else {}),
        },
    )
    return registered


def _references(context: ReportContext, options: ReportOptions) -> list[ReferenceRow]:
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
    context: ReportContext,
    rows: list[ReportRow],
    references: list[ReferenceRow],
    results: pd.DataFrame,
    skipped: list[Skipped] | None = None,
) -> tuple[pd.DataFrame, str, dict[str, list[Path]]]:
    """Table 1 as Markdown, CSV and Parquet in the report folder (and the Pareto front of a
    multi-objective search), the Markdown naming the `skipped` configurations; returns the
    table, its Markdown and the files by MLflow folder."""
    out_dir = context.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    table = table1(rows, references)
    markdown = table1_markdown(rows, references) + skipped_markdown(skipped or [])
    pareto_files: list[Path] = []
    if context.space.objective.multi:
        pareto_files = write_pareto(
            results, context.space, rows, out_dir, context.experiment_dir.name
        )
        markdown += "\n## Pareto front\n\n" + pareto_files[0].read_text(encoding="utf-8")
    files = [out_dir / f"{TABLE_NAME}.{suffix}" for suffix in ("md", "csv", "parquet")]
    write_text(files[0], markdown)
    table.to_csv(files[1], index=False)
    table.to_parquet(files[2], index=False)
    return table, markdown, {"table1": files, "pareto": pareto_files}


def write_importances(context: ReportContext, results: pd.DataFrame) -> tuple[list[Path], str]:
    """Which hyperparameters mattered (gansearch.importance): importance.md, .csv and .png in
    the report folder; returns the files and the Markdown ("" and none with under 2 trials, or
    for population-based training, whose members' values are no fixed configuration)."""
    from gansearch.figures import importance_plot
    from gansearch.importance import importance_markdown, importances

    if context.space.scheduler.type == "pbt":
        context.say(
            "report: no hyperparameter importances for population-based training: a member's "
            "values changed as it trained and its networks came from other members, so its score "
            "is not its final values' doing (`gansearch schedule` shows the values in force)"
        )
        return [], ""
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


def _report_quality_scorer(dataset: Dataset, say: Callable[[str], None]) -> QualityScorer | None:
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
