"""Population-based training: Ray Tune's synchronous PopulationBasedTraining with a population
that starts from the space's `start_with` configurations, mutations kept in the searched ranges,
and diverged members replaced by copies instead of lost."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import random
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import optuna
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.trial_scheduler import TrialScheduler
from ray.tune.search import BasicVariantGenerator

from gansearch.search.ray_private import (
    latest_checkpoint_result,
    pbt_explore,
    pbt_metric,
    pbt_move_sync,
    pbt_state,
    set_latest_checkpoint,
)
from gansearch.search.trial import PBT_TIME
from gansearch.space import make_sampler

if TYPE_CHECKING:
    from gansearch.space import Param, SearchSpace

log = logging.getLogger(__name__)


def tune_domain(param: Param) -> Any:
    """A parameter's distribution as a Ray Tune domain (pbt samples its population from it).

    Integer ranges and choices become explicit value lists, so a step is kept exactly and pbt
    moves to a neighbouring value."""
    if param.distribution in ("int", "categorical"):
        return tune.choice(mutation_values(param))
    if param.distribution == "loguniform":
        return tune.loguniform(param.low, param.high)
    return tune.uniform(param.low, param.high)


def mutation_values(param: Param) -> list[Any]:
    """The values of an integer or categorical parameter, in order (choices as Optuna has them)."""
    distribution = param.optuna_distribution()
    if param.distribution == "categorical":
        return list(distribution.choices)
    low, high, step = int(param.low), int(param.high), int(param.step or 1)
    if param.log:
        return list(range(low, high + 1))
    return list(range(low, high + 1, step))


def clip_to_ranges(config: dict, ranges: Mapping[str, tuple[float, float]]) -> dict:
    """pbt's explore step scales continuous values by 0.8 or 1.2: keep them in their ranges."""
    for key, (low, high) in ranges.items():
        if key in config:
            config[key] = min(max(float(config[key]), low), high)
    return config


class SynchronousPBT(PopulationBasedTraining):
    """Ray Tune's synchronous PopulationBasedTraining that never leaves its population waiting
    and never loses a member to divergence.

    Ray's scheduler resumes a paused trial only while it is behind the next synchronisation time.
    A resumed search restores the trials but restarts that time at the burn-in period, and trials
    that end or copy across a synchronisation point can leave the last one ahead of it: then
    nothing runs again. When no trial is running and some are waiting, the next
    synchronisation moves one perturbation interval past the furthest waiting trial.

    A member that reports a divergence is replaced at once, as a bottom member is at a ranking:
    it continues from the latest checkpoint of the best other member (by the score that
    checkpoint was saved with) with that member's values perturbed, so the population keeps its
    size and the replacement trains only what the copy trains. Before any other member has a
    checkpoint it waits, paused, for the first one; if none can come, it ends diverged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_donor: list[Any] = []  # diverged members with nobody to copy yet

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("diverged"):
            if trial.status != Trial.PAUSED:
                tune_controller.pause_trial(trial, should_checkpoint=False)
            self._awaiting_donor.append(trial)
            self._replace_diverged(tune_controller)
            return TrialScheduler.NOOP
        self._replace_diverged(tune_controller)
        return super().on_trial_result(tune_controller, trial, result)

    def _replace_diverged(self, tune_controller: Any) -> None:
        """Give every diverged member waiting for one a copy of the best other member."""
        for trial in list(self._awaiting_donor):
            donor = self._donor(tune_controller)
            if donor is None:
                return
            self._awaiting_donor.remove(trial)
            self._copy_into(trial, *donor)

    def _donor(self, tune_controller: Any) -> tuple[Any, Any] | None:
        """The member to copy and its latest checkpoint's training result: the best score
        among members that hold a finite-scored checkpoint, unfinished ones first."""
        metric, sign = pbt_metric(self)
        ranked = []
        for other in tune_controller.get_trials():
            if other in self._awaiting_donor or other.status == Trial.ERROR:
                continue
            latest = latest_checkpoint_result(other)
            metrics = (latest.metrics or {}) if latest is not None else {}
            score = metrics.get(metric)
            if latest is None or latest.checkpoint is None or score is None:
                continue
            if not math.isfinite(float(score)) or metrics.get("diverged"):
                continue
            unfinished = other.status != Trial.TERMINATED
            ranked.append((unfinished, sign * float(score), other.trial_id, other, latest))
        if not ranked:
            return None
        *_, donor, latest = max(ranked, key=lambda r: r[:3])
        return donor, latest

    def _copy_into(self, trial: Any, donor: Any, latest: Any) -> None:
        """PBT's exploit step for a paused `trial`: the donor's checkpoint and perturbed values."""
        config, tag = pbt_explore(self, trial, donor)
        trial.set_experiment_tag(tag)
        trial.set_config(config)
        set_latest_checkpoint(trial, latest.checkpoint, latest.metrics)
        metric, sign = pbt_metric(self)
        state, donor_state = pbt_state(self, trial), pbt_state(self, donor)
        copied_at = int(latest.metrics.get(PBT_TIME, latest.metrics.get("epoch", 0)))
        state.last_perturbation_time = donor_state.last_perturbation_time
        state.last_train_time = min(copied_at, donor_state.last_train_time or copied_at)
        state.last_score = sign * float(latest.metrics[metric])
        state.last_result = latest.metrics
        log.info("pbt: diverged trial %s continues from trial %s", trial.trial_id, donor.trial_id)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if trial in self._awaiting_donor:
            self._awaiting_donor.remove(trial)
        super().on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        trial = self._choose(tune_controller)
        if trial is not None:
            return trial
        live = tune_controller.get_live_trials()
        if any(t.status == Trial.RUNNING for t in live):
            return None  # the waiting trials wait for it
        waiting = [
            t
            for t in live
            if t.status in (Trial.PAUSED, Trial.PENDING)
            and pbt_state(self, t) is not None
            and t not in self._awaiting_donor
        ]
        if not waiting:
            for diverged in list(self._awaiting_donor):  # nobody left to copy: they end
                self._awaiting_donor.remove(diverged)
                tune_controller.stop_trial(diverged)
            return None
        pbt_move_sync(self, max(pbt_state(self, t).last_train_time for t in waiting))
        return self._choose(tune_controller)

    def _choose(self, tune_controller: Any) -> Any:
        """Ray's choice among the trials that may run (not those waiting for a donor)."""
        states = [pbt_state(self, t) for t in self._awaiting_donor]
        times = [s.last_train_time for s in states]
        for state in states:  # out of Ray's reach: never behind the sync time
            state.last_train_time = math.inf
        try:
            return super().choose_trial_to_run(tune_controller)
        finally:
            for state, saved in zip(states, times, strict=True):
                state.last_train_time = saved


class LastReportFilter(logging.Filter):
    """Hides Ray's warning about a report without the pbt clock: the last one has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"time_attr {PBT_TIME}" not in record.getMessage()


def first_population(space: SearchSpace) -> list[dict[str, Any]]:
    """pbt's first population: the space's `search.start_with` configurations, then draws of
    Optuna's random sampler with the space's seed, `budget.trials` in all: the configurations a
    random search of the same space starts with (so the two can be compared trial for trial)."""
    study = optuna.create_study(sampler=make_sampler(space.search))
    for point in space.search.start_with:
        study.enqueue_trial(dict(point))
    distributions = space.optuna_space()
    return [dict(study.ask(distributions).params) for _ in range(space.budget.trials)]


def build_pbt_tuner(space: SearchSpace, trainable: Any, run_config: Any) -> Any:
    """Population-based training (Ray Tune's scheduler): the population is `first_population`;
    the scheduler copies and perturbs, the trials run as in any search. Fit it inside
    `pbt_session`, which seeds the random stream the scheduler draws from."""
    sched, budget = space.scheduler, space.budget
    params = {p.key: p for p in space.params}
    mutations = {}
    for key in sched.mutate:
        param = params[key]
        continuous = param.distribution in ("uniform", "loguniform")
        mutations[key] = tune_domain(param) if continuous else mutation_values(param)
    ranges = {
        key: (float(params[key].low), float(params[key].high))
        for key in sched.mutate
        if params[key].distribution in ("uniform", "loguniform")
    }
    scheduler = SynchronousPBT(
        time_attr=PBT_TIME,
        require_attrs=False,  # a trial's last report leaves the clock out
        perturbation_interval=sched.perturbation_interval,
        burn_in_period=sched.grace_period,
        hyperparam_mutations=mutations,
        quantile_fraction=sched.quantile_fraction,
        resample_probability=sched.resample_probability,
        custom_explore_fn=functools.partial(clip_to_ranges, ranges=ranges),
        # Synchronous: the population is ranked when all of it has reached the same epoch, so a
        # copy never goes back in time and every trial trains budget.max_epochs epochs. (The
        # asynchronous variant, with a population larger than the trials that fit at once,
        # copies checkpoints from earlier epochs again and again.)
        synch=True,
    )
    # A trial copies the checkpoint another wrote at its last perturbation, which may be neither
    # that trial's best nor its latest by then: keep every checkpoint (disk: one per evaluation).
    run_config.checkpoint_config = dataclasses.replace(
        run_config.checkpoint_config, num_to_keep=None
    )
    tune_config = tune.TuneConfig(
        metric=space.objective.primary,
        mode=space.objective.modes[0],
        # No concurrency limit here: the whole population is live (paused trials count), and
        # the trials' resources decide how many train at once.
        search_alg=BasicVariantGenerator(
            points_to_evaluate=first_population(space), random_state=space.search.seed
        ),
        scheduler=scheduler,
        num_samples=budget.trials,
        reuse_actors=True,
        time_budget_s=budget.time_limit,
    )
    param_space = {p.key: tune_domain(p) for p in space.params}
    return tune.Tuner(
        trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
    )


@contextlib.contextmanager
def pbt_session(space: SearchSpace) -> Iterator[None]:
    """While a pbt search runs: Ray's scheduler draws its choices from the `random` module, so
    seed that with the space's seed for repeatable runs (and put its state back afterwards), and
    hide Ray's warning about a report without the pbt clock (the last one has none)."""
    state = random.getstate()
    random.seed(space.search.seed)
    pbt_logger = logging.getLogger("ray.tune.schedulers.pbt")
    hide = LastReportFilter()
    pbt_logger.addFilter(hide)
    try:
        yield
    finally:
        pbt_logger.removeFilter(hide)
        random.setstate(state)
