"""How a trial ended, in words people read: one definition of each status and of the rule.

Statuses are plain strings (they are stored in the trial log, results.parquet and MLflow tags).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PENDING = "pending"
RUNNING = "running"
FINISHED = "finished"  # trained every epoch of the budget
STOPPED_EARLY = "stopped early"  # by the scheduler, or because the trial-epoch budget ran out
DIVERGED = "diverged"  # NaN or Inf in training or in an objective
FAILED = "failed"  # crashed beyond its retries, or could not resume
NOT_STARTED = "not started"  # the search ended before it started
INTERRUPTED = "interrupted"  # the search stopped (Ctrl-C, SIGTERM) while it ran
ENDED = (FINISHED, STOPPED_EARLY, DIVERGED, FAILED)  # what the progress line counts
UNUSABLE = (DIVERGED, FAILED, NOT_STARTED)  # left nothing to report on or go on from


def trial_outcome(result: Mapping[str, Any], error: str | None, max_epochs: int) -> tuple[str, str]:
    """A trial's status and why, from its last result (and its error, if Tune had one)."""
    if error:
        return FAILED, error.strip().splitlines()[-1][:200]
    if result.get("diverged"):
        return DIVERGED, str(result.get("error", ""))
    if result.get("failed"):
        return FAILED, str(result.get("error", ""))
    if int(result.get("epoch", 0)) >= max_epochs:
        return FINISHED, ""
    return STOPPED_EARLY, ""
