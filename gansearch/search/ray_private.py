"""Every use of a private attribute of Ray Tune (and one of Optuna) in gansearch, and why.

Ray Tune's public API offers no way to do these things; each helper names the attribute it
reaches for (as in Ray 2.60 and Optuna 5) so that an upgrade that renames one breaks here, in one
place, and the tests that exercise the feature (in tests/search/: test_pbt.py, test_driver.py,
test_trial.py, test_optuna_search.py, test_results.py) say so.
"""

from __future__ import annotations

import copy
from typing import Any

from ray.train._internal.session import _TrainingResult
from ray.tune.schedulers.pbt import _make_experiment_tag

# --------------------------------------------------------------------------- Tuner.restore


def restored_run_config(tuner: Any) -> Any | None:
    """The run configuration a Tuner holds: a restored one's was pickled, and a resumed search
    must give it this process's callbacks and stopper (Tune restores the old ones, which hold no
    printer or MLflow client); a new one's gets the state signer (search.state), which must not
    be pickled with it. `Tuner._local_tuner` is the only way to it."""
    internal = getattr(tuner, "_local_tuner", None)
    return internal.get_run_config() if internal is not None else None


def restored_searcher(tuner: Any) -> Any | None:
    """The search algorithm inside a restored Tuner (unwrapped from its ConcurrencyLimiter), to
    hand it this process's printer. Reached through `_local_tuner._tune_config`."""
    internal = getattr(tuner, "_local_tuner", None)
    searcher = getattr(getattr(internal, "_tune_config", None), "search_alg", None)
    while hasattr(searcher, "searcher"):  # a ConcurrencyLimiter around it
        searcher = searcher.searcher
    return searcher


# --------------------------------------------------------------------------- OptunaSearch


def optuna_study(searcher: Any) -> Any:
    """The Optuna study behind Ray's OptunaSearch (`_ot_study`): the searcher enqueues the
    configurations to try first, answers repeated proposals and adopts orphans through it."""
    return searcher._ot_study


def optuna_trials(searcher: Any) -> dict[str, Any]:
    """OptunaSearch's map of Tune trial id -> live Optuna trial (`_ot_trials`), which the
    searcher edits to adopt an orphan or drop a reused proposal."""
    return searcher._ot_trials


def live_optuna_trial(study: Any, frozen: Any) -> Any:
    """A live optuna.Trial for a stored RUNNING trial, to hand it to a Tune trial after a
    resume; Optuna builds one only from the storage's private `_trial_id`."""
    import optuna

    return optuna.trial.Trial(study, frozen._trial_id)


# ------------------------------------------------------------------ PopulationBasedTraining


def pbt_state(scheduler: Any, trial: Any) -> Any | None:
    """PBT's bookkeeping of a trial (`_trial_state`: last score, train and perturbation times),
    which the synchronous scheduler reads and, for a replaced diverged member, writes."""
    return scheduler._trial_state.get(trial)


def pbt_metric(scheduler: Any) -> tuple[str, float]:
    """The metric PBT ranks on and its sign (`_metric`, `_metric_op`: +1 to maximise)."""
    return scheduler._metric, scheduler._metric_op


def pbt_move_sync(scheduler: Any, after: float) -> None:
    """Move the next synchronisation point one perturbation interval past `after`
    (`_next_perturbation_sync`), so that a population left out of step runs again."""
    scheduler._next_perturbation_sync = after + scheduler._perturbation_interval


def pbt_explore(scheduler: Any, trial: Any, donor: Any) -> tuple[dict, str]:
    """PBT's explore step for `trial` copying `donor`: the perturbed configuration and the
    experiment tag Ray gives it (`_get_new_config`, `_make_experiment_tag`), counted as one
    perturbation (`_num_perturbations`), as PBT's own exploit step counts it."""
    config, _ = scheduler._get_new_config(trial, donor)
    state = scheduler._trial_state[trial]
    tag = _make_experiment_tag(state.orig_tag, config, scheduler._hyperparam_mutations)
    scheduler._num_perturbations += 1
    return config, tag


# --------------------------------------------------------------------------- a trial's checkpoints


def latest_checkpoint_result(trial: Any) -> Any | None:
    """A trial's latest reported checkpoint and the metrics it came with (its checkpoint
    manager's `latest_checkpoint_result`)."""
    return trial.run_metadata.checkpoint_manager.latest_checkpoint_result


def set_latest_checkpoint(trial: Any, checkpoint: Any, metrics: dict[str, Any]) -> None:
    """Make a paused trial resume from `checkpoint` (another trial's), as PBT's exploit step
    does: through the checkpoint manager's `_latest_checkpoint_result` and Ray's private
    `_TrainingResult`."""
    trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
        checkpoint=copy.copy(checkpoint), metrics=metrics
    )
