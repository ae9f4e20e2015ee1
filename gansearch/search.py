"""The search: Ray Tune schedules trials of the trainer, Optuna proposes, ASHA stops weak ones.

    space = load_space("search_spaces/digits.yaml")
    outcome = run_search(space, RunOptions())
    print(outcome.table)            # one row per trial; also written as results.parquet

Every trial is `train_trial`, a Ray Tune function trainable: it builds the trainer for the sampled
configuration, trains epoch by epoch and reports the validation Parzen log-likelihood (`valid_ll`)
with a checkpoint after every evaluation epoch, so ASHA can stop it and a retried trial resumes from
its last checkpoint. Tune keeps two checkpoints per trial: the latest and the one of its best
evaluation on the primary objective (`best_checkpoint` in the results table), which `gansearch
report` evaluates, since a GAN's last epoch is seldom its best. When the space asks for them, the
same report carries the quality classifier's FID, class coverage and confidence (the driver trains
or loads the classifier once and ships it to the trials); with several objectives Optuna's
multi-objective sampler (NSGA-II by default) gets all of them, early stopping the primary one, and
the result is a Pareto front (the `pareto` column of the results table). A diverged trial reports
`diverged` and ends; Optuna records it as FAIL (never a NaN). Data is read through the memory-mapped
Arrow cache, so the trials on a node share its pages and a reused actor loads it in about a
millisecond.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import dataclasses
import functools
import json
import logging
import math
import os
import random
import re
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import optuna
import pandas as pd
import ray
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
)
from ray.tune.schedulers.pbt import _make_experiment_tag
from ray.tune.schedulers.trial_scheduler import TrialScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from gansearch.data import load_dataset
from gansearch.data.locate import DATA_DIR_ENV
from gansearch.errors import DataError, DivergenceError, GansearchError, UsageError
from gansearch.experiment import (
    CHECKPOINT_FILE,
    DRIVER_LOG,
    SPACE_COPY,
    append_report,
    append_trial_end,
    check_trusted,
    experiment_lock,
    experiment_path,
    no_foreign_writes,
    optuna_study_name,
    read_reports,
    read_trial_log,
    save_setup,
    stored_optuna_storage,
    stored_search_id,
    stored_space,
    stored_tracking_uri,
    write_results,
)
from gansearch.files import read_jsonl
from gansearch.leftovers import forget_local_ray, reap_leftover_ray, record_local_ray
from gansearch.objectives import METRICS, QUALITY_METRICS, better, pareto_mask
from gansearch.space import Param, SearchSpace, make_sampler
from gansearch.stopping import stop_signals
from gansearch.tracking import (
    SearchTracker,
    TrackingStore,
    check_reachable,
    default_tracking_uri,
    lineage_entry,
    resolve_tracking_uri,
)
from gansearch.train_config import MUTABLE_SETTINGS

if TYPE_CHECKING:
    from gansearch.data.base import Dataset
    from gansearch.quality import QualityScorer
    from gansearch.train_config import DataConfig, TrainConfig
    from gansearch.trainer import Trainer

METRIC = "valid_ll"  # the paper's objective, and the default
PBT_TIME = "pbt_epoch"  # the epoch, in every pbt report but the last one
ORIGIN_FILE = "origin.json"  # beside CHECKPOINT_FILE: the trial and epoch that wrote it

log = logging.getLogger(__name__)


class SearchError(GansearchError):
    """The search cannot start or continue (cluster, resources, experiment directory)."""

    exit_code = 2


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices that are not part of the search space."""

    address: str | None = None  # None: start a local Ray; "auto" or "ray://HOST:10001"
    name: str | None = None  # experiment name (default: the space's name)
    resume: bool = False
    data_dir: str | None = None
    results_dir: str | None = None  # default: the space's results.dir
    progress_interval: float = 10.0  # seconds between progress lines
    budget_overrides: Mapping[str, int] = field(default_factory=dict)  # trials, max_epochs, ...
    tracking_uri: str | None = None  # MLflow; default: MLFLOW_TRACKING_URI or <results>/mlflow.db
    optuna_storage: str | None = None  # Optuna RDB storage URL; default: <results>/optuna.db


@dataclass
class SearchOutcome:
    """What a finished (or interrupted) search leaves behind."""

    experiment_dir: Path
    table: pd.DataFrame  # one row per trial, best first
    interrupted: bool
    seconds: float
    first_trial_seconds: float | None
    tracking_uri: str | None = None  # the MLflow store the search was logged to
    parent_run_id: str | None = None  # its MLflow parent run
    stop_signal: int | None = None  # SIGINT or SIGTERM, when one stopped the search


# --------------------------------------------------------------------------- the trial


def _chaos(space: SearchSpace, epoch: int) -> None:
    """Fault injection (space.chaos): once per trial, crash, die or diverge at `epoch`."""
    chaos = space.chaos
    kinds = {
        chaos.kill_at_epoch: "kill",
        chaos.crash_at_epoch: "crash",
        chaos.diverge_at_epoch: "diverge",
    }
    kind = kinds.get(epoch)
    if kind is None:
        return
    context = tune.get_context()
    index = re.search(r"_(\d+)$", context.get_trial_id() or "")
    if chaos.trials is not None and (index is None or int(index[1]) not in chaos.trials):
        return
    # The trial's folder in the experiment's storage outlives its worker processes (the local
    # trial directory does not: a restarted trial may get another one).
    storage = context.get_storage()
    folder = getattr(storage, "trial_fs_path", None) or context.get_trial_dir()
    marker = Path(folder) / f"chaos-{kind}-fired"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(epoch))
    if kind == "kill":
        os._exit(17)  # the worker process dies, as on a lost node or an OOM kill
    if kind == "diverge":
        raise DivergenceError(f"chaos: injected divergence at epoch {epoch}")
    raise RuntimeError(f"chaos: injected crash at the start of epoch {epoch}")


def train_trial(
    config: dict[str, Any],
    space: SearchSpace,
    data_dir: str | None,
    quality: QualityScorer | None = None,
) -> None:
    """Ray Tune function trainable: one trial of the search (runs in a Ray worker).

    `quality` is the driver's gansearch.quality.QualityScorer when the space asks for FID,
    coverage or confidence (None otherwise).
    """
    import torch

    torch.set_num_threads(max(1, int(space.resources.cpus)))  # no oversubscription
    train_config = space.trial_config(config)
    # --- cluster (#6): where the trial ran, and data that never downloads inside a trial.
    node = ray.get_runtime_context().get_node_id()
    dataset = _trial_dataset(train_config.data, data_dir, node)
    me = tune.get_context().get_trial_id()
    try:
        trainer, copied = _start_trainer(train_config, dataset, quality, me)
    except GansearchError as exc:
        # Retrying would read the same file again: the trial fails once, saying why.
        tune.report({"failed": 1, "error": f"cannot resume: {exc}", "session_epochs": 0})
        return
    in_force = {  # the mutable searched values this trial trains with (its pbt schedule)
        p.key: p.decode(config[p.key])
        for p in space.params
        if p.base in MUTABLE_SETTINGS and p.key in config
    }
    session = _TrialSession(space, trainer, me, node, in_force, copied)
    max_epochs = space.budget.max_epochs
    while trainer.epoch < max_epochs:
        start = time.perf_counter()
        try:
            _chaos(space, trainer.epoch + 1)
            metrics = trainer.run_epoch()
        except torch.cuda.OutOfMemoryError:
            share = space.resources.gpus
            session.end(
                "failed",
                f"CUDA ran out of memory at epoch {trainer.epoch + 1} with resources.gpus "
                f"{share:g} ({round(1 / share) if 0 < share < 1 else 1} trial(s) per GPU): pack "
                "fewer trials per GPU (raise resources.gpus) or lower eval.samples",
            )
            return
        except DivergenceError as exc:
            session.end("diverged", str(exc), epoch=trainer.epoch + 1)
            return
        session.loop_seconds += time.perf_counter() - start
        if metrics.valid_ll is None:
            continue
        report = {k: v for k, v in metrics.as_dict().items() if v is not None}
        for name in space.objective.metrics:  # never hand Optuna a NaN or an infinity
            value = report.get(name)
            if value is None or not math.isfinite(value):
                session.end(
                    "diverged", f"{name} is {value} at epoch {metrics.epoch}", metrics.epoch
                )
                return
        session.report(report)
    if trainer.epoch == session.start_epoch:
        # Nothing left to train: the checkpoint this session started from (a PBT copy of a
        # finished trial, or a finished trial Tune restarted after an interruption) is already at
        # the budget. Report its last evaluation, so that Tune's last result, and the trial's
        # outcome, are those of the state it holds.
        evaluated = [m for m in trainer.history if m.valid_ll is not None]
        if evaluated:
            session.report({k: v for k, v in evaluated[-1].as_dict().items() if v is not None})


NO_COPY = {"copied_from": "", "copied_epoch": -1}


def _start_trainer(
    train_config: TrainConfig, dataset: Dataset, quality: QualityScorer | None, me: str
) -> tuple[Trainer, dict[str, Any]]:
    """The trial's trainer: from Tune's checkpoint if it has one (its own, or under pbt a
    copied one: then which trial and epoch it came from), else a new one."""
    from gansearch.trainer import Trainer

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return Trainer(train_config, dataset, quality=quality), dict(NO_COPY)
    with checkpoint.as_directory() as directory:
        # The trial's own configuration: under pbt it may hold new values of the mutated
        # settings, which the copied state continues with.
        trainer = Trainer.from_checkpoint(
            Path(directory) / CHECKPOINT_FILE,
            dataset,
            config=train_config,
            quality=quality,
            may_change=MUTABLE_SETTINGS,
        )
        origin_file = Path(directory) / ORIGIN_FILE
        origin = json.loads(origin_file.read_text()) if origin_file.exists() else {}
    if origin.get("trial_id") not in (None, me):
        return trainer, {"copied_from": origin["trial_id"], "copied_epoch": int(origin["epoch"])}
    return trainer, dict(NO_COPY)


class _TrialSession:
    """One run of the trainable (a session): what its reports carry, and how they are made.

    It trains epochs start_epoch+1, ...: the session's own count is what the trial-epoch budget
    adds up (a retry or a copied checkpoint starts a new session). Under pbt every report carries
    the values in force and the copy keys (empty when nothing was copied: Tune's progress.csv
    keeps only its first row's keys); the first report names the checkpoint it started from.
    """

    def __init__(
        self,
        space: SearchSpace,
        trainer: Trainer,
        trial_id: str,
        node: str,
        in_force: dict[str, Any],
        copied: dict[str, Any],
    ) -> None:
        self.space, self.trainer, self.trial_id, self.node = space, trainer, trial_id, node
        self.in_force, self.copied = in_force, copied
        self.id, self.start_epoch = uuid.uuid4().hex[:12], trainer.epoch
        self.loop_seconds = 0.0

    def common(self) -> dict[str, Any]:
        """What every report carries."""
        fields: dict[str, Any] = {
            "session": self.id,
            "session_epochs": self.trainer.epoch - self.start_epoch,
            "reported_at": time.time(),
            "node": self.node,
        }
        if self.space.scheduler.type == "pbt":
            fields["hp"] = dict(self.in_force)
            fields.update(self.copied)
            self.copied = dict(NO_COPY)
        return fields

    def report(self, report: dict[str, Any]) -> None:
        """An evaluated epoch's report to Tune, with the trainer's checkpoint."""
        import torch

        trainer = self.trainer
        report["loop_seconds"] = self.loop_seconds
        report["threads"] = torch.get_num_threads()
        report["diverged"] = 0
        report.update(self.common())
        if trainer.device.type == "cuda":  # what packing trials on one GPU costs each of them
            report["gpu_memory_mb"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        if self.space.scheduler.type == "pbt" and trainer.epoch < self.space.budget.max_epochs:
            report[PBT_TIME] = trainer.epoch  # the scheduler's clock: no copy after the last epoch
        with tempfile.TemporaryDirectory(prefix="gansearch-ckpt-") as directory:
            trainer.save_checkpoint(Path(directory) / CHECKPOINT_FILE)
            origin = {"trial_id": self.trial_id, "epoch": trainer.epoch}
            (Path(directory) / ORIGIN_FILE).write_text(json.dumps(origin))
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))

    def end(self, outcome: str, error: str, epoch: int | None = None) -> None:
        """The trial's last report: it `outcome` ("diverged" or "failed") because of `error`;
        a divergence at `epoch` counts that epoch as trained."""
        report = {outcome: 1, "error": error, **self.common()}
        if epoch is not None:
            report["epoch"] = epoch
            report["session_epochs"] = epoch - self.start_epoch
        tune.report(report)


def _trial_dataset(data: DataConfig, data_dir: str | None, node: str) -> Dataset:
    """The trial's data set, read on its node and never downloaded there (cluster, #6).

    The driver has already found (or downloaded) the data; a trial on a node that lacks it
    fails with a message naming the node and the directory instead of downloading its own copy.
    """
    try:
        return load_dataset(data.name, data_dir, fold=data.fold, download=False)
    except DataError as exc:
        raise DataError(
            f"on Ray node {node}: {exc}. Every node must see the data set: put the data directory "
            "on storage all nodes mount at the same path and pass it with --data-dir or "
            "GANSEARCH_DATA_DIR, or run `gansearch data NAME` on every node (cluster/README.md)"
        ) from None


def trial_data_dir(given: str | None) -> str | None:
    """The data directory the trials use: --data-dir, else the driver's GANSEARCH_DATA_DIR, as
    an absolute path (a worker node's environment need not have the driver's variable); None
    leaves each node to its own per-user cache."""
    if given:
        return str(Path(given).expanduser().resolve())
    env = os.environ.get(DATA_DIR_ENV)
    return str(Path(env).expanduser().resolve()) if env else None


def results_location(given: str) -> Path:
    """The results directory as a path; object-store URIs are refused with the alternative.

    Ray Tune itself accepts s3:// or gs:// storage, but gansearch writes results.parquet, the
    space copy and the MLflow default store with file operations, so it needs a path (shared by
    every node on a cluster: NFS, or a bucket mounted at the same path on every node).
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", given):
        raise UsageError(
            f"--results-dir / results.dir {given}: gansearch needs a file-system path for its "
            "results; on a cluster use a directory every node mounts at the same path (NFS, or "
            "the bucket mounted with s3fs/gcsfuse); see cluster/README.md"
        )
    return Path(given).expanduser().resolve()


# --------------------------------------------------------------------------- the driver


OPTUNA_DB = "optuna.db"  # the default Optuna storage, beside the MLflow store
MAX_REPEATS = 100  # proposals of already-trained configurations answered before giving up


def default_optuna_storage(results_dir: Path) -> str:
    """The embedded Optuna storage: a SQLite file in the results directory."""
    return f"sqlite:///{Path(results_dir).resolve() / OPTUNA_DB}"


class GansearchOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, told about divergence, repeats and resumes.

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
        if not self._ot_study.get_trials(deepcopy=False):  # a new study: what to try first
            for point in start_with:
                self._ot_study.enqueue_trial(dict(point))

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
        if trial_id not in self._ot_trials and (orphan := self._orphan()) is not None:
            self._ot_trials[trial_id] = orphan
        config = None
        for _ in range(MAX_REPEATS):
            config = super().suggest(trial_id)
            ot_trial = self._ot_trials[trial_id]
            earlier = self._trained(ot_trial.params, ot_trial.number)
            if earlier is None:
                break
            self._reuse(trial_id, ot_trial, earlier)
        self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return config

    def _orphan(self) -> Any | None:
        """A RUNNING Optuna trial no Tune trial holds (made before an interruption), if any."""
        import optuna

        held = {t.number for t in self._ot_trials.values()}
        running = (optuna.trial.TrialState.RUNNING,)
        for frozen in self._ot_study.get_trials(deepcopy=False, states=running):
            if frozen.number not in held:
                return optuna.trial.Trial(self._ot_study, frozen._trial_id)
        return None

    def _trained(self, params: dict[str, Any], number: int) -> Any | None:
        """The finished Optuna trial with exactly these parameters, if any."""
        import optuna

        done = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.FAIL,
            optuna.trial.TrialState.PRUNED,
        )
        for frozen in self._ot_study.get_trials(deepcopy=False, states=done):
            if frozen.number != number and frozen.params == params:
                return frozen
        return None

    def _reuse(self, trial_id: str, ot_trial: Any, earlier: Any) -> None:
        """Tell `ot_trial` the result of `earlier` (same configuration) and forget it."""
        import optuna

        ot_trial.set_user_attr("reused_from", earlier.number)
        if earlier.state == optuna.trial.TrialState.COMPLETE:
            self._ot_study.tell(
                ot_trial, earlier.values if len(earlier.values) > 1 else earlier.value
            )
        else:
            self._ot_study.tell(ot_trial, state=earlier.state)
        del self._ot_trials[trial_id]
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


def _error_text(trial: Any) -> str:
    """The last line of a failed trial's error, for people."""
    try:
        text = trial.get_error() or ""
    except Exception:  # the error file may be unreadable; the status still matters
        text = ""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else "the trial failed"


class TrialEvents(tune.Callback):
    """The one Tune callback: every trial event goes to the progress printer and trial log
    (ProgressCallback) and to MLflow (SearchTracker), in the driver process.

    A trial's status is computed here, once, when it ends. Tune pickles its callbacks with the
    experiment; the progress object (with its output stream) and the tracker are left out, and a
    resumed search attaches fresh ones.
    """

    def __init__(
        self, progress: ProgressCallback | None, tracker: SearchTracker | None, space: SearchSpace
    ) -> None:
        self.progress = progress
        self.tracker = tracker
        self.space = space

    def __getstate__(self) -> dict[str, Any]:
        return {"progress": None, "tracker": None, "space": self.space}

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.trial_started(trial.trial_id)
        if self.tracker:
            params = {p.key: p.decode((trial.config or {}).get(p.key)) for p in self.space.params}
            self.tracker.trial_started(trial.trial_id, params)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.progress:
            self.progress.trial_result(trial.trial_id, result)
        if self.tracker:
            self.tracker.trial_result(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial, _error_text(trial))

    def _ended(self, trial: Any, error: str | None) -> None:
        status, reason = classify(trial.last_result or {}, error, self.space.budget.max_epochs)
        if self.progress:
            self.progress.trial_ended(trial.trial_id, status, reason)
        if self.tracker:
            self.tracker.trial_ended(trial.trial_id, status, reason)

    def on_trial_recover(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.say(f"trial {trial.trial_id} crashed; retrying from its checkpoint")
        if self.tracker:
            self.tracker.trial_retried(trial.trial_id, int(getattr(trial, "num_failures", 0)))

    def on_step_end(self, iteration, trials, **info):
        if self.progress:
            self.progress.tick()


def _tracking_params(space: SearchSpace) -> dict[str, Any]:
    """The parent run's params: what the search is, not what a trial sampled."""
    budget, sched = space.budget, space.scheduler
    return {
        "space": space.name,
        "dataset": space.trainer.data.name,
        "fold": space.trainer.data.fold,
        "algorithm": space.search.algorithm,
        "search_seed": space.search.seed,
        "scheduler": sched.type,
        "grace_period": sched.grace_period,
        "reduction_factor": sched.reduction_factor,
        "trials": budget.trials,
        "trial_epochs": budget.trial_epochs,
        "max_epochs": budget.max_epochs,
        "concurrency": budget.concurrency,
        "searched": ", ".join(p.key for p in space.params),
        "objectives": ", ".join(
            f"{m} ({d})"
            for m, d in zip(space.objective.metrics, space.objective.modes, strict=True)
        ),
    }


# --------------------------------------------------------------------------- trial-epoch budget


def _session_key(trial_id: str, result: Mapping[str, Any]) -> tuple[str, str] | None:
    session = result.get("session")
    return None if session is None or session != session else (str(trial_id), str(session))


class TrialEpochBudget(tune.Stopper):
    """Ends the search once its trials have trained `limit` epochs together.

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
    TrialEpochBudget does. Columns: trial_epochs, best, trial (the trial that holds the best).
    """
    rows = []
    for trial_id, history in histories.items():
        if history is None or "session" not in history:
            continue
        for record in history.to_dict("records"):
            rows.append((float(record.get("reported_at") or 0.0), trial_id, record))
    rows.sort(key=lambda r: r[0])
    spent = TrialEpochBudget(limit=0)  # counts, never stops
    best, holder, points = math.nan, None, []
    for _, trial_id, record in rows:
        spent(trial_id, record)
        value = record.get(metric)
        if value is not None and math.isfinite(value) and not record.get("diverged"):
            if math.isnan(best) or better(metric, float(value), best):
                best, holder = float(value), trial_id
        points.append({"trial_epochs": spent.spent, "best": best, "trial": holder})
    return pd.DataFrame(points, columns=["trial_epochs", "best", "trial"])


def search_histories(experiment_dir: Path) -> dict[str, pd.DataFrame]:
    """Every trial's reports: the report log, or for an experiment without one, each trial
    directory's result.json or progress.csv (whichever holds more rows)."""
    reports = read_reports(experiment_dir)
    if reports:
        return reports
    histories: dict[str, pd.DataFrame] = {}
    for params in sorted(experiment_dir.glob("*/params.json")):
        table = _trial_dir_history(params.parent)
        if not table.empty and "trial_id" in table:
            histories[str(table["trial_id"].iloc[0])] = table
    return histories


def _trial_dir_history(trial_dir: Path) -> pd.DataFrame:
    """A trial directory's reports from Ray's files: result.json or progress.csv, whichever
    holds more rows (a paused and restarted trial can leave result.json short)."""
    rows = read_jsonl(trial_dir / "result.json")
    tables = [pd.json_normalize(rows, sep="/") if rows else pd.DataFrame()]
    if (trial_dir / "progress.csv").exists():
        try:
            tables.append(pd.read_csv(trial_dir / "progress.csv", dtype={"trial_id": str}))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            pass
    return max(tables, key=len)


def _stored_sessions(experiment_dir: Path) -> dict[tuple[str, str], int]:
    """The sessions already trained in an experiment (a resumed search's budget)."""
    spent = TrialEpochBudget(limit=0)
    for trial_id, history in read_reports(experiment_dir).items():
        for record in history.to_dict("records"):
            spent(trial_id, record)
    return spent.sessions


# --------------------------------------------------------------------------- progress


@dataclass
class _TrialRecord:
    started: float | None = None
    ended: float | None = None
    best: float = math.nan  # of the primary objective
    last_epoch: int = 0
    status: str = "pending"
    reason: str = ""


@dataclass
class ProgressCallback:
    """Prints a progress line at most every `interval` seconds and one per finished trial."""

    space: SearchSpace
    out: TextIO | None = None  # default: sys.stderr at the time of printing
    interval: float = 10.0
    started: float = field(default_factory=time.monotonic)
    records: dict[str, _TrialRecord] = field(default_factory=dict)
    first_trial_at: float | None = None
    budget: TrialEpochBudget | None = None  # the trial-epoch budget, when the space sets one
    experiment_dir: Path | None = None  # where every report is appended (the report log)
    _last_print: float = 0.0

    def record(self, trial_id: str) -> _TrialRecord:
        return self.records.setdefault(trial_id, _TrialRecord())

    def resume_from(self, experiment_dir: Path) -> None:
        """Start from what the search did before it was interrupted: every trial's best and
        last epoch (report log) and how the trials that ended, ended (trial log)."""
        metric = self.space.objective.primary
        for trial_id, history in read_reports(experiment_dir).items():
            record = self.record(trial_id)
            best, _ = _best_in_history(history, metric)
            record.best = best if math.isfinite(best) else record.best
            last = _last_in_history(history, "epoch")
            record.last_epoch = int(last) if math.isfinite(last) else record.last_epoch
        for trial_id, ended in read_trial_log(experiment_dir).items():
            self.record(trial_id).status = str(ended["status"])

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f} s] {message}", file=self.out or sys.stderr, flush=True)

    def trial_started(self, trial_id: str) -> None:
        record = self.record(trial_id)
        record.started = record.started or time.monotonic()
        record.status = "running"
        if self.first_trial_at is None:
            self.first_trial_at = time.monotonic()

    def trial_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        if self.experiment_dir is not None:
            append_report(self.experiment_dir, trial_id, result)
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

    def trial_ended(self, trial_id: str, status: str, reason: str) -> None:
        """The trial ended with `status` (and why): print it and add it to the trial log."""
        record = self.record(trial_id)
        record.ended = time.monotonic()
        record.status, record.reason = status, reason
        if self.experiment_dir is not None:
            wall = record.ended - record.started if record.started is not None else None
            append_trial_end(self.experiment_dir, trial_id, status, reason, wall)
        metric = self.space.objective.primary
        best = f", best {metric} {record.best:.2f}" if math.isfinite(record.best) else ""
        why = f" ({record.reason})" if record.reason else ""
        self.say(f"trial {trial_id} {record.status}{why} after {record.last_epoch} epochs{best}")
        self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_print < self.interval:
            return
        self._last_print = now
        counts = {s: 0 for s in ("running", "finished", "stopped early", "diverged", "failed")}
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


def classify(result: Mapping[str, Any], error: str | None, max_epochs: int) -> tuple[str, str]:
    """A trial's outcome for people: finished, stopped early, diverged or failed (and why)."""
    if error:
        return "failed", error.strip().splitlines()[-1][:200]
    if result.get("diverged"):
        return "diverged", str(result.get("error", ""))
    if result.get("failed"):
        return "failed", str(result.get("error", ""))
    if int(result.get("epoch", 0)) >= max_epochs:
        return "finished", ""
    return "stopped early", ""


LIBRARY_LOGGERS = ("ray", "optuna")  # their messages go to the experiment's driver.log


def _log_libraries_to(path: Path) -> Callable[[], None]:
    """Send Ray's and Optuna's log messages to `path` instead of the terminal, where only
    gansearch's lines belong; returns the function that puts their handlers back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [handler], False

    def restore() -> None:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()

    return restore


def _init_ray(address: str | None) -> bool:
    """Start a local Ray or connect to a cluster; returns whether we started it."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    # Two checkpoints per trial are kept (best and latest); Tune warns about the snapshots this
    # forces on short epochs, which says nothing actionable to a gansearch user.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress lines replace Tune's tables
    # A diverged trial's last report has no valid_ll (GansearchOptunaSearch marks it FAIL).
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, local instance
        try:
            ray.init(**kwargs)
        except Exception as exc:
            raise SearchError(f"cannot start a local Ray instance: {exc}") from exc
        return True
    _check_reachable_cluster(address)
    try:
        ray.init(address=address, **kwargs)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(
            f"cannot reach the Ray cluster at --address {address}: {first}. Start one (see "
            "cluster/README.md) or leave out --address to run on this machine"
        ) from exc
    if ray.util.client.ray.is_connected():
        # Over Ray Client, Tune runs its controller (and our progress and MLflow callbacks) in
        # an actor on the cluster, where they cannot reach this terminal or tracking client.
        ray.shutdown()
        raise SearchError(
            f"--address {address} is a Ray Client address: gansearch drives Ray Tune from its own "
            "process (progress, MLflow logging, results files), which Ray Client would move onto "
            "the cluster. Run the search on the head node instead: `ray job submit --address "
            "http://HEAD:8265 -- gansearch run --space FILE --address auto` (cluster/README.md)"
        )
    return True


CONNECT_SECONDS = 5.0  # to open a TCP connection to a Ray cluster's address


def _check_reachable_cluster(address: str) -> None:
    """Fail within seconds when nothing listens at `address` (ray.init would wait minutes and
    ignore Ctrl-C); `auto` and `local` name no host to check."""
    if address in ("auto", "local"):
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        raise UsageError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SearchError(
            f"cannot reach the Ray cluster at --address {address}: {reason}. Start one (see "
            "cluster/README.md) or leave out --address to run on this machine"
        ) from None


def _check_resources(space: SearchSpace, local: bool) -> SearchSpace:
    """Fail before any trial starts when no node can host a trial; drop GPUs on a laptop."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    per_node = [n.get("Resources", {}) for n in nodes]
    want_cpu, want_gpu = space.resources.cpus, space.resources.gpus
    total_gpus = sum(r.get("GPU", 0.0) for r in per_node)
    if want_gpu > 0 and total_gpus == 0:
        if not local:
            raise SearchError(
                f"{space.source}: resources.gpus: each trial asks for {want_gpu} GPU but the "
                "cluster has none; set resources.gpus: 0 to train on CPUs"
            )
        print(
            f"gansearch: no GPU on this machine: trials run on CPU ({space.source} asks for "
            f"{want_gpu} GPU per trial)",
            file=sys.stderr,
        )
        space = dataclasses.replace(space, resources=dataclasses.replace(space.resources, gpus=0.0))
        want_gpu = 0.0
    fits = [r for r in per_node if r.get("CPU", 0.0) >= want_cpu and r.get("GPU", 0.0) >= want_gpu]
    if not fits:
        biggest = max((r.get("CPU", 0.0) for r in per_node), default=0.0)
        raise SearchError(
            f"{space.source}: resources: a trial asks for {want_cpu} CPU and {want_gpu} GPU, "
            f"but no node has that much (the largest has {biggest:g} CPUs)"
        )
    return space


def _build_tuner(
    space: SearchSpace,
    options: RunOptions,
    experiment_dir: Path,
    progress: ProgressCallback,
    tracker: SearchTracker | None = None,
    quality: QualityScorer | None = None,
    stopper: TrialEpochBudget | None = None,
    optuna_storage: str | None = None,
):
    budget, resources = space.budget, space.resources
    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial, space=space, data_dir=trial_data_dir(options.data_dir), quality=quality
        ),
        {"cpu": resources.cpus, "gpu": resources.gpus},
    )
    run_config = tune.RunConfig(
        name=experiment_dir.name,
        storage_path=str(experiment_dir.parent),
        callbacks=[TrialEvents(progress, tracker, space)],
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
    if options.resume:
        tuner = tune.Tuner.restore(
            str(experiment_dir), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
        # Tune restores the run configuration it pickled; give it this process's callbacks.
        internal = getattr(tuner, "_local_tuner", None)
        if internal is not None:
            internal.get_run_config().callbacks = run_config.callbacks
            internal.get_run_config().stop = stopper
            searcher = getattr(internal, "_tune_config", None)
            searcher = getattr(searcher, "search_alg", None)
            while hasattr(searcher, "searcher"):  # a ConcurrencyLimiter around it
                searcher = searcher.searcher
            if isinstance(searcher, GansearchOptunaSearch):
                searcher.on_reuse = progress.say
        return tuner
    if space.scheduler.type == "pbt":
        return _build_pbt_tuner(space, trainable, run_config)
    objective = space.objective
    primary, primary_mode = objective.primary, objective.modes[0]
    searcher = GansearchOptunaSearch(
        space=space.optuna_space(),
        metric=list(objective.metrics) if objective.multi else primary,
        mode=list(objective.modes) if objective.multi else primary_mode,
        sampler=make_sampler(space.search),
        storage=optuna.storages.RDBStorage(optuna_storage) if optuna_storage else None,
        study_name=optuna_study_name(experiment_dir),
        on_reuse=progress.say,
        start_with=space.search.start_with,
    )
    scheduler: Any
    if space.scheduler.type == "asha":
        scheduler = ASHAScheduler(
            time_attr="epoch",
            max_t=budget.max_epochs,
            grace_period=space.scheduler.grace_period,
            reduction_factor=space.scheduler.reduction_factor,
        )
    elif space.scheduler.type == "median":
        scheduler = MedianStoppingRule(time_attr="epoch", grace_period=space.scheduler.grace_period)
    else:
        scheduler = FIFOScheduler()
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


def tune_domain(param: Param) -> Any:
    """A parameter's distribution as a Ray Tune domain (pbt samples its population from it).

    Integer ranges and choices become explicit value lists, so a step is kept exactly and pbt
    moves to a neighbouring value."""
    if param.distribution in ("int", "categorical"):
        return tune.choice(_values(param))
    if param.distribution == "loguniform":
        return tune.loguniform(param.low, param.high)
    return tune.uniform(param.low, param.high)


def _values(param: Param) -> list[Any]:
    """The values of an integer or categorical parameter, in order (choices as Optuna has them)."""
    distribution = param.optuna_distribution()
    if param.distribution == "categorical":
        return list(distribution.choices)
    low, high, step = int(param.low), int(param.high), int(param.step or 1)
    if param.log:
        return list(range(low, high + 1))
    return list(range(low, high + 1, step))


def _clip_to_ranges(config: dict, ranges: Mapping[str, tuple[float, float]]) -> dict:
    """pbt's explore step scales continuous values by 0.8 or 1.2: keep them in their ranges."""
    for key, (low, high) in ranges.items():
        if key in config:
            config[key] = min(max(float(config[key]), low), high)
    return config


class _SynchronousPBT(PopulationBasedTraining):
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
        ranked = []
        for other in tune_controller.get_trials():
            if other in self._awaiting_donor or other.status == Trial.ERROR:
                continue
            latest = other.run_metadata.checkpoint_manager.latest_checkpoint_result
            score = (latest.metrics or {}).get(self._metric) if latest is not None else None
            if latest is None or latest.checkpoint is None or score is None:
                continue
            if not math.isfinite(float(score)) or (latest.metrics or {}).get("diverged"):
                continue
            unfinished = other.status != Trial.TERMINATED
            ranked.append(
                (unfinished, self._metric_op * float(score), other.trial_id, other, latest)
            )
        if not ranked:
            return None
        *_, donor, latest = max(ranked, key=lambda r: r[:3])
        return donor, latest

    def _copy_into(self, trial: Any, donor: Any, latest: Any) -> None:
        """PBT's exploit step for a paused `trial`: the donor's checkpoint and perturbed values."""
        new_config, _ = self._get_new_config(trial, donor)
        state, donor_state = self._trial_state[trial], self._trial_state[donor]
        trial.set_experiment_tag(
            _make_experiment_tag(state.orig_tag, new_config, self._hyperparam_mutations)
        )
        trial.set_config(new_config)
        trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
            checkpoint=copy.copy(latest.checkpoint), metrics=latest.metrics
        )
        copied_at = int(latest.metrics.get(PBT_TIME, latest.metrics.get("epoch", 0)))
        state.last_perturbation_time = donor_state.last_perturbation_time
        state.last_train_time = min(copied_at, donor_state.last_train_time or copied_at)
        state.last_score = self._metric_op * float(latest.metrics[self._metric])
        state.last_result = latest.metrics
        self._num_perturbations += 1
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
            and t in self._trial_state
            and t not in self._awaiting_donor
        ]
        if not waiting:
            for diverged in list(self._awaiting_donor):  # nobody left to copy: they end
                self._awaiting_donor.remove(diverged)
                tune_controller.stop_trial(diverged)
            return None
        furthest = max(self._trial_state[t].last_train_time for t in waiting)
        self._next_perturbation_sync = furthest + self._perturbation_interval
        return self._choose(tune_controller)

    def _choose(self, tune_controller: Any) -> Any:
        """Ray's choice among the trials that may run (not those waiting for a donor)."""
        awaiting = {id(t): self._trial_state[t].last_train_time for t in self._awaiting_donor}
        for trial in self._awaiting_donor:  # out of Ray's reach: never behind the sync time
            self._trial_state[trial].last_train_time = math.inf
        try:
            return super().choose_trial_to_run(tune_controller)
        finally:
            for trial in self._awaiting_donor:
                self._trial_state[trial].last_train_time = awaiting[id(trial)]


class _LastReportFilter(logging.Filter):
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


def _build_pbt_tuner(space: SearchSpace, trainable: Any, run_config: Any) -> Any:
    """Population-based training (Ray Tune's scheduler): the population is budget.trials
    random samples; the scheduler copies and perturbs, the trials run as in any search."""
    sched, budget = space.scheduler, space.budget
    params = {p.key: p for p in space.params}
    mutations = {}
    for key in sched.mutate:
        param = params[key]
        continuous = param.distribution in ("uniform", "loguniform")
        mutations[key] = tune_domain(param) if continuous else _values(param)
    ranges = {
        key: (float(params[key].low), float(params[key].high))
        for key in sched.mutate
        if params[key].distribution in ("uniform", "loguniform")
    }
    # Ray's scheduler draws its choices from the `random` module: seed it for repeatable runs.
    random.seed(space.search.seed)
    pbt_logger = logging.getLogger("ray.tune.schedulers.pbt")
    if not any(isinstance(f, _LastReportFilter) for f in pbt_logger.filters):
        pbt_logger.addFilter(_LastReportFilter())
    scheduler = _SynchronousPBT(
        time_attr=PBT_TIME,
        require_attrs=False,  # a trial's last report leaves the clock out
        perturbation_interval=sched.perturbation_interval,
        burn_in_period=sched.grace_period,
        hyperparam_mutations=mutations,
        quantile_fraction=sched.quantile_fraction,
        resample_probability=sched.resample_probability,
        custom_explore_fn=functools.partial(_clip_to_ranges, ranges=ranges),
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


def trial_history(result: Any) -> pd.DataFrame | None:
    """Every report of a trial from Ray's files, one row each (nested values as `hp/<key>`
    columns), for a search without a report log: the trial directory's longer file, or what
    Ray read (storage that is not a local directory)."""
    trial_dir = Path(result.path)
    table = _trial_dir_history(trial_dir) if trial_dir.is_dir() else pd.DataFrame()
    return table if not table.empty else result.metrics_dataframe


def _best_in_history(history: pd.DataFrame | None, metric: str) -> tuple[float, int | None]:
    """The best value of `metric` over a trial's reports (in its direction) and its epoch."""
    if history is None or metric not in history or not history[metric].notna().any():
        return math.nan, None
    column = history[metric].astype(float)
    index = column.idxmax() if METRICS[metric] == "max" else column.idxmin()
    return float(column[index]), int(history["epoch"][index])


def _epochs(metrics: Mapping[str, Any], history: pd.DataFrame | None) -> int:
    """Epochs a trial trained: its last result's, else its last report's (a trial whose last
    result carries none, such as one that could not resume, trained what it had reported)."""
    if metrics.get("epoch") is not None:
        return int(metrics["epoch"])
    last = _last_in_history(history, "epoch")
    return int(last) if math.isfinite(last) else 0


def _last_in_history(history: pd.DataFrame | None, metric: str) -> float:
    """The value of `metric` at a trial's last evaluation (what Optuna got; the checkpoint)."""
    if history is None or metric not in history:
        return math.nan
    values = history[metric].dropna()
    return float(values.iloc[-1]) if len(values) else math.nan


def results_table(
    result_grid: Any,
    space: SearchSpace,
    trial_log: Mapping[str, Mapping[str, Any]] | None = None,
    budget_spent: bool = False,
    reports: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per trial: outcome, best objective value(s), epochs, time, parameters.

    `valid_ll` (and `fid` etc. when measured) are the best values over a trial's evaluations;
    `final_<metric>` are those of its last evaluation, the values Optuna recorded and its last
    checkpoint holds. A multi-objective search adds `pareto`: the trial is on the Pareto front
    of the final values. Rows are ranked by the primary objective (front first when multi).
    A trial's status and wall time come from the trial log (`trial_log`, experiment's
    read_trial_log: how each trial that ended, ended, also before a resume); a trial that had
    not ended when the search stopped is finished if it had trained every epoch, stopped early
    if the trial-epoch budget ran out (`budget_spent`), and interrupted otherwise.
    `reports` (experiment.read_reports) gives each trial's reports and lineage; a trial missing
    from it (a search from before the report log) is read from Ray's files.
    """
    objective = space.objective
    measured = [METRIC, *(QUALITY_METRICS if objective.needs_quality else ())]
    rows = []
    for result in result_grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name
        logged = (reports or {}).get(trial_id)
        history = logged if logged is not None else trial_history(result)
        best, best_epoch = _best_in_history(history, objective.primary)
        error = str(result.error) if result.error is not None else None
        ended = (trial_log or {}).get(trial_id)
        if ended is not None:
            status, reason = ended["status"], ended["reason"]
            wall = math.nan if ended.get("wall") is None else float(ended["wall"])
        elif error is None and metrics.get("epoch") is None and (history is None or history.empty):
            status, reason, wall = "not started", "the search ended before it started", math.nan
        else:
            status, reason, wall = _unended_status(metrics, error, space, budget_spent)
        loop = float(metrics.get("loop_seconds", math.nan))
        row = {
            "trial_id": trial_id,
            "status": status,
            "reason": reason,
            **{m: _best_in_history(history, m)[0] for m in measured},
            **{f"final_{m}": _last_in_history(history, m) for m in measured},
            "best_epoch": best_epoch,
            "epochs": _epochs(metrics, history),
            "sigma": metrics.get("sigma"),
            "threads": metrics.get("threads"),
            "wall_seconds": wall,
            "loop_seconds": loop,
            "overhead_seconds": wall - loop if math.isfinite(wall) else math.nan,
            "checkpoint": result.checkpoint.path if result.checkpoint else None,
            "best_checkpoint": _best_checkpoint(result, objective.primary),
            "nodes": _nodes(history),  # cluster (#6): the Ray nodes it ran on, in order
            "lineage": _lineage((reports or {}).get(trial_id)),  # pbt: the checkpoints it copied
        }
        for param in space.params:
            row[param.key] = param.decode((result.config or {}).get(param.key))
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # Trials that failed or diverged come last, whatever they scored before.
    table["_broken"] = table["status"].isin(["diverged", "failed", "not started"])
    sort_by, ascending = ["_broken", objective.primary], [True, objective.modes[0] == "min"]
    if objective.multi:
        finals = table[[f"final_{m}" for m in objective.metrics]].to_numpy(dtype=float)
        ok = ~table["status"].isin(["diverged", "failed"]).to_numpy()
        table["pareto"] = pareto_mask(np.where(ok[:, None], finals, np.nan), objective.modes)
        sort_by, ascending = ["pareto", *sort_by], [False, *ascending]
    table = table.sort_values(sort_by, ascending=ascending, na_position="last", ignore_index=True)
    return table.drop(columns="_broken")


def _best_summary(table: pd.DataFrame, space: SearchSpace) -> tuple[dict[str, float], dict]:
    """The parent run's view of what the search found: the best objective value and its
    trial (the first row of the ranked table, if it measured one)."""
    metric = space.objective.primary
    if table.empty or metric not in table:
        return {}, {}
    best = table.iloc[0]
    value = best[metric]
    if value is None or not math.isfinite(float(value)):
        return {}, {}
    return {f"best_{metric}": float(value)}, {"gansearch.best_trial": str(best["trial_id"])}


def _unended_status(
    metrics: Mapping[str, Any], error: str | None, space: SearchSpace, budget_spent: bool
) -> tuple[str, str, float]:
    """Status, reason and wall time (unknown) of a trial the search stopped before it ended."""
    if error is not None:
        return (*classify(metrics, error, space.budget.max_epochs), math.nan)
    if int(metrics.get("epoch", 0)) >= space.budget.max_epochs:  # it ended as the search did
        return "finished", "", math.nan
    if budget_spent:
        return "stopped early", "the search's trial-epoch budget was spent", math.nan
    return "interrupted", "the search stopped before this trial ended", math.nan


def _best_checkpoint(result: Any, metric: str) -> str | None:
    """The path of the trial's kept checkpoint with the best `metric` (the earliest on a tie),
    chosen as Tune's checkpoint scoring chose it: on validation, never on the test set."""
    sign = 1.0 if METRICS[metric] == "max" else -1.0
    scored = [
        (sign * float(m[metric]), -int(m.get("epoch", 0)), c.path)
        for c, m in (getattr(result, "best_checkpoints", None) or [])
        if m.get(metric) is not None and math.isfinite(float(m[metric]))
    ]
    if scored:
        return max(scored)[2]
    return result.checkpoint.path if result.checkpoint else None


def _lineage(history: pd.DataFrame | None) -> str:
    """The checkpoints a pbt trial copied, in order ("" when it copied none), each marked when
    it replaced a diverged state."""
    if history is None or "copied_from" not in history:
        return ""
    entries, diverged_at = [], None
    for row in history.to_dict("records"):
        if row.get("diverged") == 1:
            diverged_at = int(row["epoch"])
        if isinstance(row["copied_from"], str) and row["copied_from"]:
            entries.append(lineage_entry(row["copied_from"], int(row["copied_epoch"]), diverged_at))
            diverged_at = None
    return "; ".join(entries)


def _nodes(history: pd.DataFrame | None) -> str:
    """The Ray node ids a trial reported from, in order, comma-separated (a retried trial that
    lost its node shows two)."""
    if history is None or "node" not in history:
        return ""
    return ",".join(dict.fromkeys(str(n) for n in history["node"].dropna()))


def _parquet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """List-valued parameters (layer widths) become strings so Parquet has one type a column."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].map(lambda v: isinstance(v, (list, tuple))).any():
            safe[column] = safe[column].map(str)
    return safe


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


def _resume_space(given: SearchSpace, experiment_dir: Path, overrides: Mapping[str, int]):
    """The space a resumed search runs: the stored copy with its budget, never a changed one."""
    stored = stored_space(experiment_dir)
    for key, value in overrides.items():
        if getattr(stored.budget, key) != value:
            raise UsageError(
                f"--{key.replace('_', '-')} {value}: the search being resumed has "
                f"{key} {getattr(stored.budget, key)}, and a resumed search keeps its budget"
            )
    given = given.with_budget(**dataclasses.asdict(stored.budget))
    if (given.params, given.trainer) != (stored.params, stored.trainer):
        print(
            f"gansearch: {given.source} differs from the copy the search started with; "
            f"resuming runs the stored copy {stored.source}",
            file=sys.stderr,
        )
    return stored


def _quality_scorer(
    space: SearchSpace, dataset: Dataset, say: Callable[[str], None]
) -> QualityScorer | None:
    """The quality classifier the trials score their samples with (trained once, then cached),
    or None when the space asks for no quality metric."""
    if not space.objective.needs_quality:
        return None
    from gansearch.quality import load_scorer

    return load_scorer(dataset, say=say)


def run_search(space: SearchSpace, options: RunOptions, out: TextIO | None = None) -> SearchOutcome:
    """Run (or resume) a search to the end of its budget; see the module docstring."""
    started = time.monotonic()
    results_dir = results_location(options.results_dir or space.results.dir)
    experiment_dir = experiment_path(results_dir, options.name or space.name)

    def say(text: str) -> None:
        print(f"gansearch: {text}", file=out or sys.stderr, flush=True)

    # One process per experiment, start to end; files nobody else can write, so that a resume
    # can trust the state it unpickles.
    with no_foreign_writes(), experiment_lock(experiment_dir, say=say):
        return _run_locked(space, options, out, say, started, results_dir, experiment_dir)


def _space_to_run(space: SearchSpace, options: RunOptions, experiment_dir: Path) -> SearchSpace:
    """The space this run runs: a new search's with the command line's budget, or the stored
    one of the search it resumes (whose state must be trusted before Ray unpickles it)."""
    exists = tune.Tuner.can_restore(str(experiment_dir))
    if options.resume and not exists:
        raise UsageError(f"--resume: no experiment to continue at {experiment_dir}")
    if not options.resume and exists:
        raise UsageError(
            f"experiment {experiment_dir} exists: continue it with --resume, or choose another "
            "--name"
        )
    if options.resume:
        check_trusted(experiment_dir)
        return _resume_space(space, experiment_dir, options.budget_overrides)
    if options.budget_overrides:
        return space.with_budget(**options.budget_overrides)
    return space


def _start_line(space: SearchSpace, resume: bool, experiment_dir: Path, tracking_uri: str) -> str:
    """The first progress line: what runs, how, and where its results go."""
    b = space.budget
    total = f" ({b.trial_epochs} trial-epochs in all)" if b.trial_epochs else ""
    return (
        f"{'resuming' if resume else 'starting'} {experiment_dir.name}: {b.trials} trials of at "
        f"most {b.max_epochs} epochs{total}, {b.concurrency} at a time, "
        f"{space.search.algorithm} + {space.scheduler.type}; results in {experiment_dir}; "
        f"MLflow: {tracking_uri}"
    )


def _ended_search(
    result_grid: Any, space: SearchSpace, experiment_dir: Path, progress: ProgressCallback
) -> tuple[pd.DataFrame, bool]:
    """The results table of a search that ended, and whether it was interrupted (it did not
    run every trial, and not because the trial-epoch budget was spent)."""
    spent = progress.budget is not None and progress.budget.stop_all()
    table = results_table(
        result_grid,
        space,
        trial_log=read_trial_log(experiment_dir),
        budget_spent=spent,
        reports=read_reports(experiment_dir),
    )
    interrupted = (len(result_grid) < space.budget.trials and not spent) or bool(
        (table["status"] == "interrupted").any() if not table.empty else False
    )
    return table, interrupted


def _run_locked(
    space: SearchSpace,
    options: RunOptions,
    out: TextIO | None,
    say: Callable[[str], None],
    started: float,
    results_dir: Path,
    experiment_dir: Path,
) -> SearchOutcome:
    """run_search, once this process holds the experiment directory."""
    name = experiment_dir.name
    space = _space_to_run(space, options, experiment_dir)
    # Fail on missing or corrupt data before starting anything (downloads if needed).
    dataset = load_dataset(space.trainer.data.name, options.data_dir, fold=space.trainer.data.fold)
    quality = _quality_scorer(space, dataset, say)

    # MLflow: an unreachable server fails here; opening the store (5 to 8 s for a new SQLite
    # file) overlaps with starting Ray.
    stored_uri = stored_tracking_uri(experiment_dir) if options.resume else None
    tracking_uri = resolve_tracking_uri(options.tracking_uri, results_dir, stored_uri)
    check_reachable(tracking_uri)
    opener = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gansearch-mlflow-open")
    store_future = opener.submit(TrackingStore.open, tracking_uri, results_dir)
    tracker: SearchTracker | None = None
    started_ray = fitting = False
    cleanup = contextlib.ExitStack()  # what the search set up for its run, undone at its end
    try:
        reap_leftover_ray(say)
        started_ray = _init_ray(options.address)
        if started_ray and options.address is None:
            record_local_ray()
        cleanup.callback(_log_libraries_to(experiment_dir / DRIVER_LOG))  # after ray.init's
        # After ray.init, which installs a SIGTERM handler of its own that aborts the driver.
        stop = cleanup.enter_context(stop_signals(say))
        space = _check_resources(space, local=options.address is None)
        store = store_future.result()
        stopper = counter = None
        if space.budget.trial_epochs is not None:
            before = _stored_sessions(experiment_dir) if options.resume else {}
            stopper = TrialEpochBudget(space.budget.trial_epochs, before)  # Tune's
            counter = TrialEpochBudget(space.budget.trial_epochs, before)  # what progress shows
        progress = ProgressCallback(
            space,
            out=out,
            interval=options.progress_interval,
            budget=counter,
            experiment_dir=experiment_dir,
        )
        if options.resume:
            progress.resume_from(experiment_dir)
            optuna_storage = stored_optuna_storage(experiment_dir)
        else:
            default = tracking_uri == default_tracking_uri(results_dir)
            optuna_storage = None
            if space.scheduler.type != "pbt":  # pbt's population is drawn in memory
                optuna_storage = options.optuna_storage or default_optuna_storage(results_dir)
            save_setup(experiment_dir, space, None if default else tracking_uri, optuna_storage)
        tracker = SearchTracker.start(
            store,
            name,
            experiment_dir,
            _tracking_params(space),
            resume=options.resume,
            search_id=stored_search_id(experiment_dir),
            tags={"gansearch.space_file": str(Path(space.source).resolve())},
            warn=progress.say,
        )
        progress.say(_start_line(space, options.resume, experiment_dir, tracking_uri))
        tuner = _build_tuner(
            space, options, experiment_dir, progress, tracker, quality, stopper, optuna_storage
        )
        fitting = stop.stopping = True
        result_grid = tuner.fit()
        table, interrupted = _ended_search(result_grid, space, experiment_dir, progress)
        results = write_results(experiment_dir, _parquet_safe(table))
        summary, tags = _best_summary(table, space)
        tracker.finish(interrupted, [experiment_dir / SPACE_COPY, results], summary, tags)
    except BaseException as exc:
        if tracker is not None and tracker.is_open:
            # A search that never ran leaves no run; one that broke off says why.
            reason = str(exc) or type(exc).__name__
            tracker.abandon(reason, delete=not (options.resume or fitting))
        raise
    finally:
        opener.shutdown(wait=False, cancel_futures=True)
        if started_ray:
            ray.shutdown()
            forget_local_ray()
        cleanup.close()
    first = progress.first_trial_at - started if progress.first_trial_at else None
    return SearchOutcome(
        experiment_dir=experiment_dir,
        table=table,
        interrupted=interrupted,
        seconds=time.monotonic() - started,
        first_trial_seconds=first,
        tracking_uri=tracking_uri,
        parent_run_id=tracker.parent_run_id,
        stop_signal=stop.received,
    )
