"""The Optuna searcher: Ray's OptunaSearch, made to reuse the result of a configuration it
proposes twice instead of training it again."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from gansearch.search.ray_private import live_optuna_trial, optuna_study, optuna_trials

MAX_REPEATS = 100  # proposals of already-trained configurations answered before giving up


class ReusingOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch that never trains a configuration twice, and knows about divergence,
    configurations to try first and resumes.

    - A diverged or failed trial is FAIL, never a NaN (a NaN handed to Optuna leaves its trial
      RUNNING forever).
    - A proposal of a configuration an earlier trial already trained (NSGA-II with a small
      population proposes some twice) is not trained again: training is deterministic, so the
      Optuna trial is told the earlier result, marked with the user attribute `reused_from`,
      and Optuna is asked again.
    - The space's `search.start_with` configurations are enqueued: Optuna proposes them first
      (a key a configuration leaves out is sampled as usual).
    - Every Optuna trial records its Tune trial (user attribute `tune_trial_id`). After a
      resume, a proposal the interrupted driver had made but no Tune trial kept is handed to the
      next Tune trial, so the study holds one Optuna trial per Tune trial.
    """

    def __init__(
        self,
        *args: Any,
        on_reuse: Callable[[str], None] | None = None,
        start_with: tuple[dict[str, Any], ...] = (),
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.on_reuse = on_reuse
        study = optuna_study(self)  # None until a space is given (a searcher to restore into)
        if start_with and study is not None and not study.get_trials(deepcopy=False):
            for point in start_with:  # a new study: what to try first
                study.enqueue_trial(dict(point))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["on_reuse"] = None  # a printer of this process: a resumed driver sets its own
        return state

    def save(self, checkpoint_path: str) -> None:
        on_reuse, self.on_reuse = self.on_reuse, None
        try:
            super().save(checkpoint_path)
        finally:
            self.on_reuse = on_reuse

    def suggest(self, trial_id: str) -> dict | None:
        if trial_id not in optuna_trials(self) and (orphan := self._orphan()) is not None:
            optuna_trials(self)[trial_id] = orphan
        config = None
        for _ in range(MAX_REPEATS):
            config = super().suggest(trial_id)
            ot_trial = optuna_trials(self)[trial_id]
            earlier = self._trained(ot_trial.params, ot_trial.number)
            if earlier is None:
                break
            self._reuse(trial_id, ot_trial, earlier)
        optuna_trials(self)[trial_id].set_user_attr("tune_trial_id", trial_id)
        return config

    def _orphan(self) -> Any | None:
        """A RUNNING Optuna trial no Tune trial holds (made before an interruption), if any."""
        import optuna

        held = {t.number for t in optuna_trials(self).values()}
        running = (optuna.trial.TrialState.RUNNING,)
        for frozen in optuna_study(self).get_trials(deepcopy=False, states=running):
            if frozen.number not in held:
                return live_optuna_trial(optuna_study(self), frozen)
        return None

    def _trained(self, params: dict[str, Any], number: int) -> Any | None:
        """The finished Optuna trial with exactly these parameters, if any."""
        import optuna

        done = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.FAIL,
            optuna.trial.TrialState.PRUNED,
        )
        for frozen in optuna_study(self).get_trials(deepcopy=False, states=done):
            if frozen.number != number and frozen.params == params:
                return frozen
        return None

    def _reuse(self, trial_id: str, ot_trial: Any, earlier: Any) -> None:
        """Tell `ot_trial` the result of `earlier` (same configuration) and forget it."""
        import optuna

        ot_trial.set_user_attr("reused_from", earlier.number)
        if earlier.state == optuna.trial.TrialState.COMPLETE:
            optuna_study(self).tell(
                ot_trial, earlier.values if len(earlier.values) > 1 else earlier.value
            )
        else:
            optuna_study(self).tell(ot_trial, state=earlier.state)
        del optuna_trials(self)[trial_id]
        if self.on_reuse is not None:
            which = earlier.user_attrs.get("tune_trial_id", f"#{earlier.number}")
            self.on_reuse(
                f"Optuna proposed trial {which}'s configuration again: its result is reused (not "
                "trained twice) and Optuna asked for another"
            )

    def _usable(self, result: dict) -> bool:
        """Whether `result` has every objective, finite (a multi-objective search has several)."""
        names = [self.metric] if isinstance(self.metric, str) else list(self.metric or [])
        values = [result.get(name) for name in names]
        return (
            not result.get("diverged")
            and not result.get("failed")
            and all(v is not None and math.isfinite(v) for v in values)
        )

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._usable(result):
            super().on_trial_result(trial_id, result)  # multi-objective: Optuna takes none

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if result and not self._usable(result):
            super().on_trial_complete(trial_id, None, error=True)  # Optuna: FAIL
            return
        super().on_trial_complete(trial_id, result, error)
