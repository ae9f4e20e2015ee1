"""The one Tune callback: where every trial event of a search goes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from gansearch.experiment import append_report, append_trial_end
from gansearch.outcomes import trial_outcome

if TYPE_CHECKING:
    from gansearch.progress import ProgressPrinter
    from gansearch.search.state import StateSigner
    from gansearch.space import SearchSpace
    from gansearch.tracking import SearchTracker


def _error_text(trial: Any) -> str:
    """The last line of a failed trial's error, for people."""
    try:
        text = trial.get_error() or ""
    except Exception:  # the error file may be unreadable; the status still matters
        text = ""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else "the trial failed"


class TrialEvents(tune.Callback):
    """The one Tune callback: every trial event goes to the experiment's report and trial logs,
    to the progress printer and to MLflow (SearchTracker), in the driver process.

    A trial's status is computed here, once, when it ends. After each step of Tune's loop,
    and at its end, the state Tune saved is signed (`signer`, which the driver attaches). Tune
    pickles its callbacks with the experiment; the printer (with its output stream), the
    tracker and the signer (with this user's key) are left out, and a resumed search attaches
    fresh ones.
    """

    def __init__(
        self,
        progress: ProgressPrinter | None,
        tracker: SearchTracker | None,
        space: SearchSpace,
        experiment_dir: Path | None = None,
    ) -> None:
        self.progress = progress
        self.tracker = tracker
        self.space = space
        self.experiment_dir = experiment_dir  # where the report and trial logs are appended
        self.signer: StateSigner | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "progress": None,
            "tracker": None,
            "space": self.space,
            "experiment_dir": None,
            "signer": None,
        }

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.trial_started(trial.trial_id)
        if self.tracker:
            params = {p.key: p.decode((trial.config or {}).get(p.key)) for p in self.space.params}
            self.tracker.trial_started(trial.trial_id, params)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.experiment_dir is not None:
            append_report(self.experiment_dir, trial.trial_id, result)
        if self.progress:
            self.progress.trial_result(trial.trial_id, result)
        if self.tracker:
            self.tracker.trial_result(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial, _error_text(trial))

    def _ended(self, trial: Any, error: str | None) -> None:
        status, reason = trial_outcome(trial.last_result or {}, error, self.space.budget.max_epochs)
        wall = self.progress.trial_ended(trial.trial_id, status, reason) if self.progress else None
        if self.experiment_dir is not None:
            append_trial_end(self.experiment_dir, trial.trial_id, status, reason, wall)
        if self.tracker:
            self.tracker.trial_ended(trial.trial_id, status, reason)

    def on_trial_recover(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.say(f"trial {trial.trial_id} crashed; retrying from its checkpoint")
        if self.tracker:
            self.tracker.trial_retried(trial.trial_id, int(getattr(trial, "num_failures", 0)))

    def on_step_end(self, iteration, trials, **info):
        if self.signer is not None:  # Tune saves its state (when it does) just before this
            self.signer.after_step(trials)
        if self.progress:
            self.progress.tick()

    def on_experiment_end(self, trials, **info):
        if self.signer is not None:  # after Tune's last save
            self.signer.after_step(trials)
