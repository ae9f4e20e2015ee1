"""The leaderboard a search prints when it ends: its best trials and their parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from gansearch.space import SearchSpace


def format_leaderboard(table: pd.DataFrame, space: SearchSpace, size: int) -> str:
    """The best trials as aligned text: rank, objective(s), epochs, time, parameters.

    A multi-objective search lists its Pareto front (every trial on it) with the final values.
    """
    if table.empty:
        return "no trials ran"
    objective = space.objective
    if objective.multi:
        shown = table[table["pareto"]]
        columns = [f"final_{m}" for m in objective.metrics]
        lines = [
            f"Pareto front of {len(table)} trials ({len(shown)} trials; "
            + ", ".join(
                f"{m} {'max' if d == 'max' else 'min'}"
                for m, d in zip(objective.metrics, objective.modes, strict=True)
            )
            + "; values of each trial's last evaluation):"
        ]
    else:
        shown = table.head(size)
        columns = [objective.primary]
        lines = [
            f"best {len(shown)} of {len(table)} trials by {objective.primary} "
            f"({'highest' if objective.modes[0] == 'max' else 'lowest'}):"
        ]
    names = [c.removeprefix("final_") for c in columns]
    header = " ".join(f"{n[:15]:>15}" for n in names)
    lines.append(
        f"{'#':>2}  {'trial':<12} {header} {'epochs':>6} {'time s':>7}  {'status':<13} params"
    )
    for rank, row in enumerate(shown.to_dict("records"), start=1):
        params = ", ".join(f"{p.key}={_short(row.get(p.key))}" for p in space.params)
        if row.get("lineage"):
            params += f" (final values; {row['lineage']})"
        values = " ".join(
            f"{row[c]:15.2f}" if pd.notna(row.get(c)) else f"{'-':>15}" for c in columns
        )
        wall = f"{row['wall_seconds']:7.1f}" if pd.notna(row["wall_seconds"]) else f"{'-':>7}"
        lines.append(
            f"{rank:>2}  {row['trial_id']:<12} {values} {row['epochs']:>6} {wall}  "
            f"{row['status']:<13} {params}"
        )
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
