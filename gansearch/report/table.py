"""Table 1: the paper's Parzen log-likelihoods beside the report's rows and the reference rows
(gansearch.references), as a long table (CSV, Parquet) and in the paper's layout (Markdown).

Only numbers in the same column are comparable: a search runs on one data set (for TFD, one
fold), and `comparability` says when a row is not comparable with the paper's column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from gansearch.objectives import QUALITY_METRICS

TABLE_NAME = "table1"  # table1.md, .csv and .parquet in the report folder

# Table 1 of the paper: model -> {dataset: (mean, standard error)}.
PAPER_TABLE: dict[str, dict[str, tuple[float, float]]] = {
    "DBN": {"mnist": (138.0, 2.0), "tfd": (1909.0, 66.0)},
    "Stacked CAE": {"mnist": (121.0, 1.6), "tfd": (2110.0, 50.0)},
    "Deep GSN": {"mnist": (214.0, 1.1), "tfd": (1890.0, 29.0)},
    "Adversarial nets": {"mnist": (225.0, 2.0), "tfd": (2057.0, 26.0)},
}
PAPER = "Goodfellow et al. (2014), Table 1"
REFERENCE = "reference"  # the `source` of the reference rows in the long table
# The quality classifier's numbers a row carries: its metrics and the classes there are.
QUALITY_FIELDS = (*QUALITY_METRICS, "n_classes")
DATASET_LABELS = {"mnist": "MNIST", "tfd": "TFD", "fashion_mnist": "Fashion-MNIST"}


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


def comparability(dataset: str, fold: int | None) -> str | None:
    """Why a row of this data set is not directly comparable with the paper's column, if so."""
    if dataset == "tfd":
        return f"TFD fold {fold} only: SE across test examples (the paper's is across 5 folds)"
    if dataset not in PAPER_TABLE["DBN"]:
        return f"{dataset}: not comparable with the paper's columns"
    return None


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
