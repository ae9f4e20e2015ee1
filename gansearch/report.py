"""Table 1 for the best configurations of a search, logged to MLflow beside the paper's rows.

    report = make_report(ReportOptions(experiment_dir=Path("runs/digits-quick"), top=3))
    print(report.markdown)

The best `top` trials by validation log-likelihood get the paper's final evaluation: the trainer
config's `eval.final_samples` samples (10,000 by default) from the trial's last checkpoint, drawn
with noise from `torch.Generator().manual_seed(seed)` so anyone can recompute them; sigma
cross-validated on the first `eval.final_n_valid` validation examples; the mean test
log-likelihood with its standard error. A search runs on one data set (for TFD, one fold), so a
TFD row is one fold's number with the standard error across its test examples, and says so (the
paper's is across five folds). With `retrain`, a trial that ASHA stopped early is first trained on
from its checkpoint to the search's full epoch budget (resuming is exact, so this is the
configuration trained to its budget); the table marks those rows.

Each reported trial's child run gets the test metrics and its artifacts (Figure 2-style samples
with nearest training examples, Figure 3-style interpolations in z space, learning curves, the
generator's state dict, the search-space file); the parent run gets Table 1 as Markdown, CSV and
Parquet. The same files are written under `<experiment_dir>/report/`.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gansearch.errors import GansearchError, UsageError
from gansearch.tracking import (
    PARENT_TAG,
    TAG_EXPERIMENT_DIR,
    TAG_ROLE,
    TAG_STATUS,
    TAG_TRIAL_ID,
    TrackingStore,
    param_name,
    resolve_tracking_uri,
)

# Files a search leaves in its experiment directory (gansearch.search writes them).
RESULTS_FILE = "results.parquet"
SPACE_COPY = "search_space.yaml"
META_FILE = "gansearch.json"
CHECKPOINT_FILE = "trainer.pt"
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
    epochs: int  # epochs of the evaluated generator
    max_epochs: int
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


# --------------------------------------------------------------------------- locating a search


def find_experiment(results_dir: Path, name: str | None) -> Path:
    """The experiment directory of search `name` in `results_dir` (the only one if no name)."""
    results_dir = Path(results_dir).expanduser()
    if name is not None:
        path = results_dir / name
        if not (path / RESULTS_FILE).exists():
            known = _experiments(results_dir)
            hint = f"; searches there: {', '.join(known)}" if known else ""
            raise UsageError(
                f"--experiment {name}: no finished search at {path} (no {RESULTS_FILE}){hint}"
            )
        return path.resolve()
    known = _experiments(results_dir)
    if len(known) == 1:
        return (results_dir / known[0]).resolve()
    if not known:
        raise UsageError(f"no search results in {results_dir}: run `gansearch run` first")
    raise UsageError(f"{results_dir} holds several searches; choose one with --experiment: {known}")


def _experiments(results_dir: Path) -> list[str]:
    if not results_dir.is_dir():
        return []
    return sorted(p.parent.name for p in results_dir.glob(f"*/{RESULTS_FILE}"))


def stored_tracking_uri(experiment_dir: Path) -> str | None:
    """The tracking URI the search was started with (None: the default store)."""
    meta = experiment_dir / META_FILE
    return json.loads(meta.read_text()).get("tracking_uri") if meta.exists() else None


def _search_space(experiment_dir: Path) -> Any:
    from gansearch.space import load_space

    space = load_space(experiment_dir / SPACE_COPY)
    meta = experiment_dir / META_FILE
    if meta.exists():
        space = space.with_budget(**json.loads(meta.read_text())["budget"])
    return space


def best_trials(results: pd.DataFrame, top: int) -> pd.DataFrame:
    """The `top` trials with the best validation log-likelihood that left a checkpoint."""
    ok = results["valid_ll"].map(lambda v: v is not None and math.isfinite(v))
    ok &= ~results["status"].isin(["diverged", "failed"])
    ok &= results["checkpoint"].map(
        lambda c: isinstance(c, str) and (Path(c) / CHECKPOINT_FILE).exists()
    )
    ranked = results[ok].sort_values("valid_ll", ascending=False, kind="stable")
    return ranked.head(top).reset_index(drop=True)


# --------------------------------------------------------------------------- evaluation


def seeded_generator(device: Any, seed: int) -> Any:
    """The torch.Generator that seeds the report's noise."""
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


def final_evaluation(trainer: Any, seed: int) -> tuple[Any, np.ndarray]:
    """The paper's protocol on `trainer`'s generator: (ParzenResult, the samples scored)."""
    from gansearch.parzen import ParzenConfig, evaluate

    e = trainer.config.eval
    samples = trainer.sample(e.final_samples, rng=seeded_generator(trainer.device, seed))
    config = ParzenConfig(
        sigmas=e.sigmas, n_valid=e.final_n_valid, precision=e.precision, device=str(trainer.device)
    )
    dataset = trainer.dataset
    return evaluate(samples, dataset.valid, dataset.test, config=config), samples.numpy()


def interpolations(trainer: Any, rows: int, steps: int, seed: int) -> np.ndarray:
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


def learning_curves(history: list[Any], path: Path, title: str, stopped_at: int | None) -> Path:
    """Losses, D outputs and validation log-likelihood against epoch, as a PNG (Agg)."""
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
        axes.legend(fontsize="small")
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return path


# --------------------------------------------------------------------------- Table 1


def table1(rows: list[ReportRow]) -> pd.DataFrame:
    """Table 1 in long format: one row per (model, data set), the paper's first, then ours."""
    records: list[dict[str, Any]] = []
    for model, cells in PAPER_TABLE.items():
        for dataset, (mean, se) in cells.items():
            records.append(
                {"source": PAPER, "model": model, "dataset": dataset, "test_ll": mean, "se": se}
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


def table1_markdown(rows: list[ReportRow]) -> str:
    """Table 1 laid out as in the paper (a column per data set), with our rows below."""
    datasets = ["mnist", "tfd"] + sorted({r.dataset for r in rows} - {"mnist", "tfd"})
    header = ["Model", *(DATASET_LABELS.get(d, d) for d in datasets), "Notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, cells in PAPER_TABLE.items():
        values = [_cell(*cells[d], paper=True) if d in cells else "" for d in datasets]
        lines.append("| " + " | ".join([model, *values, "the paper"]) + " |")
    for row in rows:
        values = [_cell(row.test_mean, row.test_se) if d == row.dataset else "" for d in datasets]
        name = f"gansearch #{row.rank}: trial {row.trial_id}"
        lines.append("| " + " | ".join([name, *values, row.note]) + " |")
    lines.append("")
    lines.append(
        "Parzen-window test log-likelihood (higher is better), mean ± standard error. Our rows: "
        "each configuration's generator, samples seeded as noted, sigma cross-validated on the "
        "validation set. Only numbers in the same column are comparable."
    )
    return "\n".join(lines) + "\n"


def _cell(mean: float, se: float, paper: bool = False) -> str:
    if paper:  # as printed in the paper: 138 ± 2, 121 ± 1.6, 1909 ± 66
        return f"{mean:g} ± {se:g}"
    return f"{mean:.2f} ± {se:.2f}"


# --------------------------------------------------------------------------- the report


def make_report(options: ReportOptions, say: Callable[[str], None] | None = None) -> Report:
    """Evaluate the best trials of a finished search, write Table 1 and log it all to MLflow."""
    import torch

    from gansearch.data import load_dataset
    from gansearch.figures import sample_grid
    from gansearch.trainer import Trainer

    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    if options.top < 1:
        raise UsageError(f"--top must be >= 1, got {options.top}")
    experiment_dir = Path(options.experiment_dir).resolve()
    space = _search_space(experiment_dir)
    results = pd.read_parquet(experiment_dir / RESULTS_FILE)
    chosen = best_trials(results, options.top)
    if chosen.empty:
        raise GansearchError(
            f"{experiment_dir / RESULTS_FILE}: no trial has a validation log-likelihood and a "
            "checkpoint to report on"
        )
    uri = resolve_tracking_uri(
        options.tracking_uri, experiment_dir.parent, stored_tracking_uri(experiment_dir)
    )
    store = TrackingStore.open(uri, experiment_dir.parent)
    experiment_id = store.experiment_id(experiment_dir.name)
    parent_id = _parent_run(store, experiment_id, experiment_dir)
    child_runs = store.trial_runs(experiment_id, parent_id)

    data = space.trainer.data
    dataset = load_dataset(data.name, options.data_dir, fold=data.fold)
    max_epochs = space.budget.max_epochs
    out_dir = experiment_dir / REPORT_DIR
    say(
        f"report: final Parzen evaluation of the best {len(chosen)} of {len(results)} trials of "
        f"{experiment_dir.name} (seed {options.seed}); MLflow: {uri}"
    )
    rows: list[ReportRow] = []
    for rank, trial in enumerate(chosen.to_dict("records"), start=1):
        started = time.perf_counter()
        trial_id = str(trial["trial_id"])
        folder = out_dir / trial_id
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = Path(trial["checkpoint"]) / CHECKPOINT_FILE
        trainer = Trainer.from_checkpoint(checkpoint, dataset)
        searched_epochs = trainer.epoch
        retrained = False
        if options.retrain and trainer.epoch < max_epochs:
            trainer, checkpoint = _retrain(trainer, folder, max_epochs, dataset, say, rank)
            retrained = True
        result, samples = final_evaluation(trainer, options.seed)

        e = trainer.config.eval
        n_grid = e.grid_rows * e.grid_cols
        files = [
            sample_grid(
                samples[:n_grid],
                dataset.image_shape,
                dataset.train,
                e.grid_rows,
                e.grid_cols,
                folder / "samples.png",
            ),
            sample_grid(
                interpolations(trainer, e.grid_rows, e.grid_cols, options.seed),
                dataset.image_shape,
                None,
                e.grid_rows,
                e.grid_cols,
                folder / "interpolations.png",
            ),
            learning_curves(
                trainer.history,
                folder / "learning_curves.png",
                f"{experiment_dir.name}: trial {trial_id}",
                searched_epochs if retrained else None,
            ),
        ]
        torch.save(trainer.generator.state_dict(), folder / "generator.pt")
        shutil.copyfile(experiment_dir / SPACE_COPY, folder / SPACE_COPY)
        files += [folder / "generator.pt", folder / SPACE_COPY]

        n_valid = min(len(dataset.valid), e.final_n_valid or len(dataset.valid))
        row = ReportRow(
            rank=rank,
            trial_id=trial_id,
            run_id="",
            dataset=dataset.name,
            fold=data.fold if data.name == "tfd" else None,
            status=str(trial["status"]),
            search_valid_ll=float(trial["valid_ll"]),
            epochs=trainer.epoch,
            max_epochs=max_epochs,
            retrained=retrained,
            sigma=result.sigma,
            valid_mean=result.valid_mean,
            valid_se=result.valid_se,
            test_mean=float(result.test_mean),
            test_se=float(result.test_se),
            n_samples=int(result.n_samples),
            n_valid=n_valid,
            n_test=len(dataset.test),
            seed=options.seed,
            checkpoint=str(checkpoint),
            seconds=0.0,
            note=_note(
                dataset.name,
                data.fold,
                trainer.epoch,
                max_epochs,
                searched_epochs,
                retrained,
                len(samples),
                options.seed,
            ),
        )
        run_id = _log_trial(store, experiment_id, parent_id, child_runs, trial, space, row, files)
        seconds = time.perf_counter() - started
        row = _replace(row, run_id=run_id, seconds=seconds)
        rows.append(row)
        say(
            f"report {rank}/{len(chosen)}: trial {trial_id} ({row.epochs} epochs"
            f"{', retrained' if retrained else ''}): test log-likelihood {row.test_mean:.2f} ± "
            f"{row.test_se:.2f} (sigma {row.sigma:.4f}, {row.n_samples} samples) in {seconds:.1f} s"
        )

    table = table1(rows)
    markdown = table1_markdown(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{TABLE_NAME}.md").write_text(markdown, encoding="utf-8")
    table.to_csv(out_dir / f"{TABLE_NAME}.csv", index=False)
    table.to_parquet(out_dir / f"{TABLE_NAME}.parquet", index=False)
    try:
        for suffix in ("md", "csv", "parquet"):
            store.client.log_artifact(parent_id, str(out_dir / f"{TABLE_NAME}.{suffix}"), "table1")
        store.client.set_tag(parent_id, "gansearch.report", f"top {len(rows)}, seed {options.seed}")
    except Exception as exc:
        raise GansearchError(f"MLflow: cannot log Table 1 to run {parent_id}: {exc}") from None
    return Report(
        rows=rows,
        table=table,
        markdown=markdown,
        directory=out_dir,
        tracking_uri=uri,
        experiment_id=experiment_id,
        parent_run_id=parent_id,
    )


def _replace(row: ReportRow, **changes: Any) -> ReportRow:
    from dataclasses import replace

    return replace(row, **changes)


def _note(
    dataset: str,
    fold: int | None,
    epochs: int,
    max_epochs: int,
    searched: int,
    retrained: bool,
    n_samples: int,
    seed: int,
) -> str:
    parts = [f"{n_samples} samples, seed {seed}", f"{epochs} of {max_epochs} epochs"]
    if retrained:
        parts.append(f"stopped early at {searched}, retrained to {epochs}")
    elif epochs < max_epochs:
        parts.append("stopped early, not retrained")
    if dataset == "tfd":
        parts.append(
            f"TFD fold {fold} only: SE across test examples (the paper's is across 5 folds)"
        )
    elif dataset not in PAPER_TABLE["DBN"]:
        parts.append(f"{dataset}: not comparable with the paper's columns")
    return "; ".join(parts)


def _retrain(trainer: Any, folder: Path, max_epochs: int, dataset: Any, say: Any, rank: int):
    """Train a stopped-early trial on to `max_epochs`; reuses an earlier report's result."""
    from gansearch.trainer import Trainer

    path = folder / "retrained.pt"
    if path.exists():
        done = Trainer.from_checkpoint(path, dataset)
        if done.epoch == max_epochs and done.history[: trainer.epoch] == trainer.history:
            say(f"report {rank}: reusing {path} ({max_epochs} epochs)")
            return done, path
    say(f"report {rank}: retraining from epoch {trainer.epoch} to {max_epochs}")
    trainer.fit(
        max_epochs,
        callback=lambda m: say(
            f"report {rank}:   epoch {m.epoch}/{max_epochs}"
            + (f" valid LL {m.valid_ll:.2f}" if m.valid_ll is not None else "")
        ),
    )
    trainer.save_checkpoint(path)
    return trainer, path


def _parent_run(store: TrackingStore, experiment_id: str, experiment_dir: Path) -> str:
    """The search's parent run; created if the search was run without tracking."""
    found = store.find_search_run(experiment_id, experiment_dir)
    if found is not None:
        return found.info.run_id
    tags = {TAG_ROLE: "search", TAG_EXPERIMENT_DIR: str(experiment_dir), TAG_STATUS: "unknown"}
    run = store.client.create_run(experiment_id, run_name=experiment_dir.name, tags=tags)
    store.client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _log_trial(
    store: TrackingStore,
    experiment_id: str,
    parent_id: str,
    child_runs: dict[str, Any],
    trial: dict[str, Any],
    space: Any,
    row: ReportRow,
    files: list[Path],
) -> str:
    """Test metrics, tags and artifacts on the trial's child run (created if missing)."""
    from mlflow.entities import Metric, Param, RunTag

    client = store.client
    try:
        run = child_runs.get(row.trial_id)
        if run is None:
            tags = {PARENT_TAG: parent_id, TAG_ROLE: "trial", TAG_TRIAL_ID: row.trial_id}
            tags[TAG_STATUS] = row.status
            created = client.create_run(experiment_id, run_name=row.trial_id, tags=tags)
            run_id = created.info.run_id
            params = [Param(param_name(p.key), str(trial.get(p.key))) for p in space.params]
            client.log_batch(run_id, params=params)
            client.set_terminated(run_id, "FINISHED")
        else:
            run_id = run.info.run_id
        stamp = int(time.time() * 1000)
        values = {
            "test_ll": row.test_mean,
            "test_ll_se": row.test_se,
            "test_sigma": row.sigma,
            "final_valid_ll": row.valid_mean,
            "final_valid_se": row.valid_se,
            "final_samples": row.n_samples,
        }
        metrics = [Metric(k, float(v), stamp, row.epochs) for k, v in values.items()]
        tags = [
            RunTag("gansearch.report_rank", str(row.rank)),
            RunTag("gansearch.report_seed", str(row.seed)),
            RunTag("gansearch.retrained", str(row.retrained).lower()),
            RunTag("gansearch.report_note", row.note),
        ]
        client.log_batch(run_id, metrics=metrics, tags=tags)
        for path in files:
            client.log_artifact(run_id, str(path), "report")
    except Exception as exc:
        raise GansearchError(
            f"MLflow: cannot log the report of trial {row.trial_id}: {exc}"
        ) from None
    return run_id


def format_report(report: Report) -> str:
    """Table 1 and where everything went, for people."""
    return (
        f"{report.markdown}\nTable 1 and figures: {report.directory}\n"
        f"MLflow: {report.tracking_uri} (experiment {report.experiment_id}, "
        f"parent run {report.parent_run_id})"
    )
