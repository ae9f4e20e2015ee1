"""The driver: `run_search` runs (or resumes) a search from its space file to its results.

    outcome = run_search(load_space("search_spaces/digits.yaml"), RunOptions())

It holds the experiment directory for its whole run, checks the data, the tracking store and
the cluster before any trial starts, runs the Tuner, and writes results.parquet and the MLflow
parent run's summary at the end, whether the search finished or was interrupted. Ray's saved
state is signed as it is written, and a resume lets Ray load only state this user signed or
vouched for with --trust-state (search/state.py).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd
import ray
from ray import tune

from gansearch.data import load_dataset
from gansearch.errors import GansearchError, SearchError, UsageError
from gansearch.experiment import (
    DRIVER_LOG,
    SPACE_COPY,
    check_trusted,
    experiment_lock,
    experiment_path,
    no_foreign_writes,
    read_reports,
    read_trial_log,
    save_setup,
    stored_optuna_storage,
    stored_search_id,
    stored_tracking_uri,
    write_results,
)
from gansearch.histories import EpochCounter, stored_sessions
from gansearch.orphaned_ray import forget_local_ray, reap_leftover_ray, record_local_ray
from gansearch.outcomes import INTERRUPTED
from gansearch.progress import ProgressPrinter
from gansearch.search.budget import TrialEpochBudget
from gansearch.search.cluster import (
    fit_resources,
    is_local,
    ray_environment,
    send_library_logs,
    start_ray,
)
from gansearch.search.events import TrialEvents
from gansearch.search.pbt import pbt_session
from gansearch.search.ray_private import restored_run_config
from gansearch.search.results import best_summary, results_table
from gansearch.search.state import TUNER_FILE, StateSigner, check_state, restore_failed
from gansearch.search.tuner import build_tuner
from gansearch.signals import stop_signals
from gansearch.signing import Signatures, load_key
from gansearch.space import stored_space
from gansearch.tracking import (
    SearchTracker,
    TrackingStore,
    check_reachable,
    default_tracking_uri,
    resolve_tracking_uri,
)

if TYPE_CHECKING:
    from gansearch.data.base import Dataset
    from gansearch.quality import QualityScorer
    from gansearch.space import SearchSpace


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices that are not part of the search space."""

    address: str | None = None  # None: start a local Ray; "auto" or "ray://HOST:10001"
    name: str | None = None  # experiment name (default: the space's name)
    resume: bool = False
    trust_state: bool = False  # --resume from Ray state this user did not sign: sign it first
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


OPTUNA_DB = "optuna.db"  # the default Optuna storage, beside the MLflow store


def default_optuna_storage(results_dir: Path) -> str:
    """The embedded Optuna storage: a SQLite file in the results directory."""
    return f"sqlite:///{Path(results_dir).resolve() / OPTUNA_DB}"


def search_params(space: SearchSpace) -> dict[str, Any]:
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


def trial_quality_scorer(
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
    name = space.name if options.name is None else options.name
    experiment_dir = experiment_path(results_dir, name)
    if options.trust_state and not options.resume:
        raise UsageError("--trust-state goes with --resume: it vouches for a search's saved state")

    def say(text: str) -> None:
        print(f"gansearch: {text}", file=out or sys.stderr, flush=True)

    # One process per experiment, start to end; files nobody else can write, so that a resume
    # can trust the state it unpickles.
    with no_foreign_writes(), experiment_lock(experiment_dir, say=say):
        return _run_locked(space, options, out, say, started, results_dir, experiment_dir)


def _space_to_run(
    space: SearchSpace,
    options: RunOptions,
    experiment_dir: Path,
    signatures: Signatures,
    say: Callable[[str], None],
) -> SearchSpace:
    """The space this run runs: a new search's with the command line's budget, or the stored
    one of the search it resumes (whose state must be trusted, and signed by this user or
    vouched for with --trust-state, before Ray unpickles it)."""
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
        check_state(signatures, options.trust_state, say)
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
    result_grid: Any, space: SearchSpace, experiment_dir: Path, progress: ProgressPrinter
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
        (table["status"] == INTERRUPTED).any() if not table.empty else False
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
    signatures = Signatures.load(experiment_dir, load_key())
    space = _space_to_run(space, options, experiment_dir, signatures, say)
    # Fail on missing or corrupt data before starting anything (downloads if needed).
    dataset = load_dataset(space.trainer.data.name, options.data_dir, fold=space.trainer.data.fold)
    quality = trial_quality_scorer(space, dataset, say)

    # MLflow: an unreachable server fails here; opening the store (5 to 8 s for a new SQLite
    # file) overlaps with starting Ray.
    stored_uri = stored_tracking_uri(experiment_dir) if options.resume else None
    tracking_uri = resolve_tracking_uri(options.tracking_uri, results_dir, stored_uri)
    check_reachable(tracking_uri)
    opener = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gansearch-mlflow-open")
    store_future = opener.submit(TrackingStore.open, tracking_uri, results_dir)
    tracker: SearchTracker | None = None
    fitting = False
    try:
        with _ray_session(options, experiment_dir, say) as stop:
            space = fit_resources(space, local=is_local(options.address))
            progress, stopper = _progress(space, options, out, experiment_dir)
            optuna_storage = _setup(space, options, results_dir, experiment_dir, tracking_uri)
            tracker = SearchTracker.start(
                store_future.result(),
                experiment_dir.name,
                experiment_dir,
                search_params(space),
                resume=options.resume,
                search_id=stored_search_id(experiment_dir),
                tags={"gansearch.space_file": str(Path(space.source).resolve())},
                warn=progress.say,
            )
            progress.say(_start_line(space, options.resume, experiment_dir, tracking_uri))
            signer = StateSigner(signatures, progress.say)
            tuner = _tuner(
                space, options, experiment_dir, progress, tracker, quality, stopper, optuna_storage
            )
            _attach_signer(tuner, signer)
            if not options.resume:
                signer.sign_in_place([TUNER_FILE])  # the Tuner has just written it
            with pbt_session(space) if space.scheduler.type == "pbt" else contextlib.nullcontext():
                fitting = stop.stopping = True
                try:
                    result_grid = tuner.fit()
                finally:
                    signer.sign_staged()  # the state Tune saved last, also on an interruption
            table, interrupted = _ended_search(result_grid, space, experiment_dir, progress)
            results = write_results(experiment_dir, table)
            summary, tags = best_summary(table, space)
            tracker.finish(interrupted, [experiment_dir / SPACE_COPY, results], summary, tags)
    except BaseException as exc:
        if tracker is not None and tracker.is_open:
            # A search that never ran leaves no run; one that broke off says why.
            reason = str(exc) or type(exc).__name__
            tracker.abandon(reason, delete=not (options.resume or fitting))
        raise
    finally:
        opener.shutdown(wait=False, cancel_futures=True)
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


def _tuner(
    space: SearchSpace,
    options: RunOptions,
    experiment_dir: Path,
    progress: ProgressPrinter,
    tracker: SearchTracker,
    quality: QualityScorer | None,
    stopper: TrialEpochBudget | None,
    optuna_storage: str | None,
) -> Any:
    """build_tuner's Tuner; on a resume, state Ray cannot restore is said, file and cause."""
    try:
        return build_tuner(
            space,
            options.resume,
            options.data_dir,
            experiment_dir,
            progress,
            tracker,
            quality,
            stopper,
            optuna_storage,
        )
    except GansearchError:
        raise
    except Exception as exc:
        if not options.resume:
            raise
        raise SearchError(restore_failed(experiment_dir, exc)) from exc


def _attach_signer(tuner: Any, signer: StateSigner) -> None:
    """Give the Tuner's TrialEvents callback the signer of Ray's state (the callback is made
    by build_tuner, and pickled with the Tuner without it)."""
    run_config = restored_run_config(tuner)
    for callback in getattr(run_config, "callbacks", None) or ():
        if isinstance(callback, TrialEvents):
            callback.signer = signer


@contextlib.contextmanager
def _ray_session(
    options: RunOptions, experiment_dir: Path, say: Callable[[str], None]
) -> Iterator[Any]:
    """Ray for the search: a local instance (recorded, so that a killed driver's is ended by
    the next search) or the cluster at --address, with Ray's logs in driver.log and the
    driver's own Ctrl-C and SIGTERM handling; yields the signal handler's state, and shuts a
    local Ray down at the end."""
    started, local = False, is_local(options.address)  # RAY_ADDRESS names a cluster too
    with contextlib.ExitStack() as stack:
        try:
            reap_leftover_ray(say)
            stack.enter_context(ray_environment(local=local))
            started = start_ray(options.address)
            if started and local:
                record_local_ray()
            stack.callback(send_library_logs(experiment_dir / DRIVER_LOG))  # after ray.init's
            # After ray.init, which installs a SIGTERM handler of its own that aborts the driver.
            yield stack.enter_context(stop_signals(say))
        finally:
            if started:
                ray.shutdown()
                forget_local_ray()


def _progress(
    space: SearchSpace, options: RunOptions, out: TextIO | None, experiment_dir: Path
) -> tuple[ProgressPrinter, TrialEpochBudget | None]:
    """The progress printer (starting, on a resume, from what the search had done) and the
    trial-epoch budget Tune stops on (with the epochs trained before a resume)."""
    stopper = counter = None
    if space.budget.trial_epochs is not None:
        before = stored_sessions(experiment_dir) if options.resume else {}
        stopper = TrialEpochBudget(space.budget.trial_epochs, before)  # Tune's
        counter = EpochCounter(space.budget.trial_epochs, before)  # what progress shows
    progress = ProgressPrinter(space, out=out, interval=options.progress_interval, budget=counter)
    if options.resume:
        progress.resume_from(experiment_dir)
    return progress, stopper


def _setup(
    space: SearchSpace,
    options: RunOptions,
    results_dir: Path,
    experiment_dir: Path,
    tracking_uri: str,
) -> str | None:
    """The Optuna storage of the search: a resumed search's own, or for a new one the chosen
    (or default) storage, recorded with the space file, budget and MLflow store."""
    if options.resume:
        return stored_optuna_storage(experiment_dir)
    default = tracking_uri == default_tracking_uri(results_dir)
    optuna_storage = None
    if space.scheduler.type != "pbt":  # pbt's population is drawn in memory
        optuna_storage = options.optuna_storage or default_optuna_storage(results_dir)
    save_setup(
        experiment_dir,
        Path(space.source),
        dataclasses.asdict(space.budget),
        None if default else tracking_uri,
        optuna_storage,
    )
    return optuna_storage
