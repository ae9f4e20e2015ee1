"""A multi-objective search's Pareto front in the report: every member's final search values
and parameters, the test numbers of the members the report evaluated, and a scatter plot of all
trials' final objectives with the front marked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from gansearch.files import write_text
from gansearch.outcomes import DIVERGED, FAILED
from gansearch.report.table import QUALITY_FIELDS

if TYPE_CHECKING:
    from pathlib import Path

    from gansearch.report.table import ReportRow
    from gansearch.space import SearchSpace


def pareto_table(results: pd.DataFrame, space: SearchSpace, rows: list[ReportRow]) -> pd.DataFrame:
    """The whole Pareto front: each member's final search values and parameters, and the test
    numbers of the members the report evaluated (empty for the others)."""
    objective = space.objective
    front = results[results["pareto"]]
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


def write_pareto(
    results: pd.DataFrame, space: SearchSpace, rows: list[ReportRow], out_dir: Path, name: str
) -> list[Path]:
    """pareto.md, pareto.csv and pareto.png (every trial's final objectives, front marked)."""
    from gansearch.figures import pareto_plot

    objective = space.objective
    front = pareto_table(results, space, rows)
    files = [out_dir / "pareto.md", out_dir / "pareto.csv"]
    write_text(files[0], pareto_markdown(front, space))
    front.to_csv(files[1], index=False)
    usable = results[~results["status"].isin([DIVERGED, FAILED])]
    finals = usable[[f"final_{m}" for m in objective.metrics]].to_numpy(dtype=float)
    files.append(
        pareto_plot(
            finals,
            usable["pareto"].to_numpy(dtype=bool),
            usable["trial_id"].astype(str).tolist(),
            objective.metrics,
            objective.modes,
            out_dir / "pareto.png",
            f"{name}: {len(usable)} trials, Pareto front of {len(front)}",
        )
    )
    return files
