"""What a running search prints: a progress line now and then, and one line per ended trial."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gansearch.experiment import read_reports, read_trial_log
from gansearch.histories import EpochCounter, best_in_history, last_in_history
from gansearch.objectives import better
from gansearch.outcomes import ENDED, PENDING, RUNNING

if TYPE_CHECKING:
    from gansearch.space import SearchSpace


@dataclass
class _TrialRecord:
    started: float | None = None
    ended: float | None = None
    best: float = math.nan  # of the primary objective
    last_epoch: int = 0
    status: str = PENDING
    reason: str = ""


@dataclass
class ProgressPrinter:
    """Prints a progress line at most every `interval` seconds and one per ended trial.

    It keeps what it prints: each trial's best value, last epoch and status, and the trial-epochs
    spent (`budget`, a display-only counter). It writes no file: the search's trial-event
    callback appends the report and trial logs.
    """

    space: SearchSpace
    out: TextIO | None = None  # default: sys.stderr at the time of printing
    interval: float = 10.0
    started: float = field(default_factory=time.monotonic)
    records: dict[str, _TrialRecord] = field(default_factory=dict)
    first_trial_at: float | None = None
    budget: EpochCounter | None = None  # the trial-epoch budget, when the space sets one
    _last_print: float = 0.0

    def record(self, trial_id: str) -> _TrialRecord:
        return self.records.setdefault(trial_id, _TrialRecord())

    def resume_from(self, experiment_dir: Path) -> None:
        """Start from what the search did before it was interrupted: every trial's best and
        last epoch (report log) and how the trials that ended, ended (trial log)."""
        metric = self.space.objective.primary
        for trial_id, history in read_reports(experiment_dir).items():
            record = self.record(trial_id)
            best, _ = best_in_history(history, metric)
            record.best = best if math.isfinite(best) else record.best
            last = last_in_history(history, "epoch")
            record.last_epoch = int(last) if math.isfinite(last) else record.last_epoch
        for trial_id, ended in read_trial_log(experiment_dir).items():
            self.record(trial_id).status = str(ended["status"])

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f} s] {message}", file=self.out or sys.stderr, flush=True)

    def trial_started(self, trial_id: str) -> None:
        record = self.record(trial_id)
        record.started = record.started or time.monotonic()
        record.status = RUNNING
        if self.first_trial_at is None:
            self.first_trial_at = time.monotonic()

    def trial_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        if self.budget is not None:  # (Tune restores its own copy of the stopper on resume)
            self.budget(trial_id, dict(result))
        record = self.record(trial_id)
        record.last_epoch = int(result.get("epoch", record.last_epoch))
        if result.get("diverged") and self.space.scheduler.type == "pbt":
            self.say(
                f"trial {trial_id} diverged at epoch {record.last_epoch} ({result.get('error')}): "
                "it goes on from a copy of the best member"
            )
        metric = self.space.objective.primary
        value = result.get(metric)
        if value is not None and math.isfinite(value):
            if math.isnan(record.best) or better(metric, float(value), record.best):
                record.best = float(value)

    def trial_ended(self, trial_id: str, status: str, reason: str) -> float | None:
        """The trial ended with `status` (and why): print it; returns its wall time (None if
        it started before this driver did)."""
        record = self.record(trial_id)
        record.ended = time.monotonic()
        record.status, record.reason = status, reason
        metric = self.space.objective.primary
        best = f", best {metric} {record.best:.2f}" if math.isfinite(record.best) else ""
        why = f" ({record.reason})" if record.reason else ""
        self.say(f"trial {trial_id} {record.status}{why} after {record.last_epoch} epochs{best}")
        self.tick(force=True)
        return record.ended - record.started if record.started is not None else None

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_print < self.interval:
            return
        self._last_print = now
        counts = {s: 0 for s in (RUNNING, *ENDED)}
        for record in self.records.values():
            if record.status in counts:
                counts[record.status] += 1
        metric = self.space.objective.primary
        best = None
        for trial_id, record in self.records.items():
            if math.isfinite(record.best) and (
                best is None or better(metric, record.best, best[1].best)
            ):
                best = (trial_id, record)
        best_text = f"; best {metric} {best[1].best:.2f} (trial {best[0]})" if best else ""
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        spent = f"; trial-epochs {self.budget.spent}/{self.budget.limit}" if self.budget else ""
        self.say(f"trials of {self.space.budget.trials}: {summary}{spent}{best_text}")
