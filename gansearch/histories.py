"""A search's trials as histories of reports: the epochs they trained, their best values, their
lineage and the ancestry of their networks, and the best objective found against trial-epochs
spent (`gansearch compare`).

Read from the experiment's report log; no Ray import, so the commands that only read a search
start fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gansearch.experiment import read_reports
from gansearch.objectives import METRICS, better
from gansearch.tracking import lineage_entry


def _session_key(trial_id: str, result: Mapping[str, Any]) -> tuple[str, str] | None:
    session = result.get("session")
    return None if session is None or session != session else (str(trial_id), str(session))


class EpochCounter:
    """Counts the epochs a search's trials trained together, against a `limit`.

    Every epoch trained is counted once: each run of the trainable (a session) reports how many
    epochs it trained itself, so a retry or a population-based copy of another trial's checkpoint
    adds only what it trains. `spent_before` carries the sessions of a search being resumed.
    """

    def __init__(self, limit: int, spent_before: Mapping[tuple[str, str], int] | None = None):
        self.limit = limit
        self.sessions: dict[tuple[str, str], int] = dict(spent_before or {})

    def __call__(self, trial_id: str, result: dict) -> bool:
        key = _session_key(trial_id, result)
        if key is not None:
            trained = int(result.get("session_epochs") or 0)
            self.sessions[key] = max(self.sessions.get(key, 0), trained)
        return False

    @property
    def spent(self) -> int:
        """Epochs trained so far, over all trials."""
        return sum(self.sessions.values())

    def stop_all(self) -> bool:
        return self.spent >= self.limit


def budget_curve(histories: Mapping[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """The best `metric` found against trial-epochs spent, over all of a search's reports.

    Reports are replayed in the order they were made (`reported_at`), counting epochs as
    EpochCounter does. Columns: trial_epochs, best, trial (the trial that holds the best).
    """
    rows = []
    for trial_id, history in histories.items():
        if history is None or "session" not in history:
            continue
        for record in history.to_dict("records"):
            rows.append((float(record.get("reported_at") or 0.0), trial_id, record))
    rows.sort(key=lambda r: r[0])
    spent = EpochCounter(limit=0)  # counts, never stops
    best, holder, points = math.nan, None, []
    for _, trial_id, record in rows:
        spent(trial_id, record)
        value = record.get(metric)
        if value is not None and math.isfinite(value) and not record.get("diverged"):
            if math.isnan(best) or better(metric, float(value), best):
                best, holder = float(value), trial_id
        points.append({"trial_epochs": spent.spent, "best": best, "trial": holder})
    return pd.DataFrame(points, columns=["trial_epochs", "best", "trial"])


def stored_sessions(experiment_dir: Path) -> dict[tuple[str, str], int]:
    """The sessions already trained in an experiment (a resumed search's budget)."""
    spent = EpochCounter(limit=0)
    for trial_id, history in read_reports(experiment_dir).items():
        for record in history.to_dict("records"):
            spent(trial_id, record)
    return spent.sessions


def best_in_history(history: pd.DataFrame | None, metric: str) -> tuple[float, int | None]:
    """The best value of `metric` over a trial's reports (in its direction) and its epoch."""
    if history is None or metric not in history or not history[metric].notna().any():
        return math.nan, None
    column = history[metric].astype(float)
    index = column.idxmax() if METRICS[metric] == "max" else column.idxmin()
    return float(column[index]), int(history["epoch"][index])


def last_in_history(history: pd.DataFrame | None, metric: str) -> float:
    """The value of `metric` at a trial's last evaluation (what Optuna got; the checkpoint)."""
    if history is None or metric not in history:
        return math.nan
    values = history[metric].dropna()
    return float(values.iloc[-1]) if len(values) else math.nan


def epochs_trained(metrics: Mapping[str, Any], history: pd.DataFrame | None) -> int:
    """Epochs a trial trained: its last result's, else its last report's (a trial whose last
    result carries none, such as one that could not resume, trained what it had reported)."""
    if metrics.get("epoch") is not None:
        return int(metrics["epoch"])
    last = last_in_history(history, "epoch")
    return int(last) if math.isfinite(last) else 0


def lineage(history: pd.DataFrame | None) -> str:
    """The checkpoints a pbt trial copied, in order ("" when it copied none), each marked when
    it replaced a diverged state."""
    if history is None or "copied_from" not in history:
        return ""
    entries, diverged_at = [], None
    for row in history.to_dict("records"):
        # A report's copy began its session; a divergence it reports ended that session, and
        # the next session's copy is the one that replaced the diverged state.
        if isinstance(row["copied_from"], str) and row["copied_from"]:
            entries.append(lineage_entry(row["copied_from"], int(row["copied_epoch"]), diverged_at))
            diverged_at = None
        if row.get("diverged") == 1:
            diverged_at = int(row["epoch"])
    return "; ".join(entries)


def nodes(history: pd.DataFrame | None) -> str:
    """The Ray node ids a trial reported from, in order, comma-separated (a retried trial that
    lost its node shows two)."""
    if history is None or "node" not in history:
        return ""
    return ",".join(dict.fromkeys(str(n) for n in history["node"].dropna()))


@dataclass(frozen=True)
class Stretch:
    """Epochs `first`..`last` in the history of a network, trained by `trial` with `hp` (the
    searched values) in force; `copied`: the (trial, epoch) checkpoint the stretch began from,
    None when it began from scratch."""

    trial: str
    first: int
    last: int
    hp: dict[str, Any]
    copied: tuple[str, int] | None = None


def ancestry(
    reports: Mapping[str, pd.DataFrame], trial: str, epoch: int, before: float = math.inf
) -> list[Stretch]:
    """Who trained the networks of `trial`'s checkpoint at `epoch`, and with what values, from
    epoch 1: under population-based training a trial that copied another's checkpoint inherits
    that checkpoint's past, so its networks' history runs through other trials. `before`: only
    reports written by then count (a copy took the source's checkpoint as it was at the time)."""
    history = reports.get(trial)
    if history is None:
        raise ValueError(f"trial {trial} has no reports (reported: {', '.join(sorted(reports))})")
    for first, copied, rows in reversed(_lines(history)):
        reached = [
            r
            for r in rows
            if int(r["epoch"]) == epoch and r.get("diverged") != 1 and _reported_at(r) <= before
        ]
        if first <= epoch and reached:
            hp = {
                key[len("hp/") :]: value
                for key, value in rows[0].items()
                if key.startswith("hp/") and not (isinstance(value, float) and math.isnan(value))
            }
            stretch = Stretch(trial, first, epoch, hp, copied)
            if copied is None:
                return [stretch]
            return [*ancestry(reports, *copied, before=_reported_at(rows[0])), stretch]
    raise ValueError(f"trial {trial} reported no checkpoint at epoch {epoch}")


def _lines(history: pd.DataFrame) -> list[tuple[int, tuple[str, int] | None, list[dict]]]:
    """A trial's reports cut where it went on from a copied checkpoint: (first epoch, the copy,
    the reports), in the order they were written."""
    lines: list[tuple[int, tuple[str, int] | None, list[dict]]] = [(1, None, [])]
    for row in history.to_dict("records"):
        source = row.get("copied_from")
        if isinstance(source, str) and source:
            copied_epoch = int(row["copied_epoch"])
            lines.append((copied_epoch + 1, (source, copied_epoch), []))
        lines[-1][2].append(row)
    return [line for line in lines if line[2]]


def _reported_at(row: Mapping[str, Any]) -> float:
    value = row.get("reported_at")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf
