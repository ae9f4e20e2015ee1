"""The Tuner of a search: the trial function with its resources, checkpoints kept, the one
callback, and the scheduler (ASHA, the median stopping rule, none, or pbt) with the Optuna
searcher; or, for --resume, the Tuner restored from the experiment's state."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule
from ray.tune.search import ConcurrencyLimiter

from gansearch.experiment import optuna_study_name
from gansearch.search.events import TrialEvents
from gansearch.search.optuna_search import ReusingOptunaSearch
from gansearch.search.pbt import build_pbt_tuner
from gansearch.search.ray_private import restored_run_config, restored_searcher
from gansearch.search.trial import train_trial, trial_data_dir
from gansearch.space import make_sampler

if TYPE_CHECKING:
    from gansearch.progress import ProgressPrinter
    from gansearch.quality import QualityScorer
    from gansearch.search.budget import TrialEpochBudget
    from gansearch.space import SearchSpace
    from gansearch.tracking import SearchTracker


def _early_stopping(space: SearchSpace) -> Any:
    """The scheduler of a search that is not pbt: ASHA, the median stopping rule, or none."""
    sched = space.scheduler
    if sched.type == "asha":
        return ASHAScheduler(
            time_attr="epoch",
            max_t=space.budget.max_epochs,
            grace_period=sched.grace_period,
            reduction_factor=sched.reduction_factor,
        )
    if sched.type == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=sched.grace_period)
    return FIFOScheduler()


def build_tuner(
    space: SearchSpace,
    resume: bool,
    data_dir: str | None,
    experiment_dir: Path,
    progress: ProgressPrinter,
    tracker: SearchTracker | None = None,
    quality: QualityScorer | None = None,
    stopper: TrialEpochBudget | None = None,
    optuna_storage: str | None = None,
) -> tune.Tuner:
    """The search's Tuner: a new one (Optuna searcher and early stopping, or pbt), or with
    `resume` the one restored from `experiment_dir`, given this process's callbacks."""
    budget, resources = space.budget, space.resources
    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial, space=space, data_dir=trial_data_dir(data_dir), quality=quality
        ),
        {"cpu": resources.cpus, "gpu": resources.gpus},
    )
    run_config = tune.RunConfig(
        name=experiment_dir.name,
        storage_path=str(experiment_dir.parent),
        callbacks=[TrialEvents(progress, tracker, space, experiment_dir)],
        stop=stopper,
        verbose=0,
        failure_config=tune.FailureConfig(max_failures=resources.max_failures),
        # Per trial, the checkpoint of its best evaluation on the primary objective (what the
        # report evaluates; validation only) and, always, the latest (what a retry resumes).
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1,
            checkpoint_score_attribute=space.objective.primary,
            checkpoint_score_order=space.objective.modes[0],
        ),
    )
    if resume:
        tuner = tune.Tuner.restore(
            str(experiment_dir), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
        # Tune restores the run configuration it pickled; give it this process's callbacks.
        restored = restored_run_config(tuner)
        if restored is not None:
            restored.callbacks = run_config.callbacks
            restored.stop = stopper
        searcher = restored_searcher(tuner)
        if isinstance(searcher, ReusingOptunaSearch):
            searcher.on_reuse = progress.say
        return tuner
    if space.scheduler.type == "pbt":
        return build_pbt_tuner(space, trainable, run_config)
    objective = space.objective
    primary, primary_mode = objective.primary, objective.modes[0]
    searcher = ReusingOptunaSearch(
        space=space.optuna_space(),
        metric=list(objective.metrics) if objective.multi else primary,
        mode=list(objective.modes) if objective.multi else primary_mode,
        sampler=make_sampler(space.search),
        storage=optuna.storages.RDBStorage(optuna_storage) if optuna_storage else None,
        study_name=optuna_study_name(experiment_dir),
        on_reuse=progress.say,
        start_with=space.search.start_with,
    )
    scheduler = _early_stopping(space)
    tune_config = tune.TuneConfig(
        metric=primary,  # early stopping uses the primary objective
        mode=primary_mode,
        search_alg=ConcurrencyLimiter(searcher, max_concurrent=budget.concurrency),
        scheduler=scheduler,
        num_samples=budget.trials,
        reuse_actors=True,
        time_budget_s=budget.time_limit,
    )
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)
