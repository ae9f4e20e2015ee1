"""MLflow tracking of a search: one experiment per search space, a parent run per search, a
nested child run per trial.

    store = TrackingStore.open(resolve_tracking_uri(None, results_dir, None), results_dir)
    tracker = SearchTracker.start(store, "digits-quick", experiment_dir, params, resume=False)
    tracker.trial_started("a1b2", {"optim.lr_d": 0.1})      # from a Ray Tune callback
    tracker.trial_result("a1b2", {"epoch": 1, "valid_ll": 123.4, ...})
    tracker.trial_ended("a1b2", "stopped early", "")
    tracker.finish(interrupted=False)

Everything is written from the driver (never from trials: SQLite takes one writer), through one
background thread, so a slow store never holds up Ray Tune's event loop. Runs are found again by
their tags (`gansearch.experiment_dir` on the parent, `gansearch.trial_id` on each child), so a
resumed search adds to the same runs. The default store is `sqlite:///<results_dir>/mlflow.db` with
artifacts in `<results_dir>/mlartifacts`: no server needed. Nothing here imports Ray.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gansearch.errors import GansearchError

if TYPE_CHECKING:
    from gansearch.models import NoiseSpec

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
TAG_ROLE = "gansearch.role"  # "search" (parent) or "trial" (child)
TAG_EXPERIMENT_DIR = "gansearch.experiment_dir"
TAG_SEARCH_ID = "gansearch.search_id"  # the experiment directory's identity, wherever it moves
# MLflow 3's UI opens an experiment in its model-training view (not the GenAI one) with this tag.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
GENERATOR_ARTIFACT = "generator"  # a reported trial's generator, MLflow's PyTorch flavour
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def model_name(experiment_name: str) -> str:
    """The registered-model name of a search's best generator."""
    return f"{experiment_name}-generator"


TAG_TRIAL_ID = "gansearch.trial_id"
TAG_STATUS = "gansearch.status"  # running, finished, stopped early, diverged, failed, interrupted
TAG_REASON = "gansearch.reason"
TAG_LINEAGE = "gansearch.lineage"  # pbt: "epoch 12: copied trial ab12_00003; ..."
PARENT_TAG = "mlflow.parentRunId"
# Per-epoch values a trial reports (gansearch.trainer.EpochMetrics and the trial's own timing).
EPOCH_METRICS = (
    "d_loss",
    "g_loss",
    "d_real",
    "d_fake",
    "lr_d",
    "lr_g",
    "momentum",
    "d_steps",
    "g_steps",
    "valid_ll",
    "valid_se",
    "sigma",
    "seconds",
    "eval_seconds",
    "loop_seconds",
    "fid",
    "classes_covered",
    "class_kl",
    "confidence",
)
# Tune status -> MLflow run status.
RUN_STATUS = {
    "finished": "FINISHED",
    "stopped early": "FINISHED",
    "diverged": "FAILED",
    "failed": "FAILED",
    "interrupted": "KILLED",
}


class TrackingError(GansearchError):
    """The MLflow tracking store cannot be reached or used (exit code 2)."""

    exit_code = 2


def default_tracking_uri(results_dir: Path) -> str:
    """The embedded store: a SQLite file inside the results directory."""
    return f"sqlite:///{Path(results_dir).resolve() / DB_FILE}"


def resolve_tracking_uri(given: str | None, results_dir: Path, stored: str | None = None) -> str:
    """Which store to use: --tracking-uri, else the one the search started with, else
    MLFLOW_TRACKING_URI, else the embedded SQLite store in `results_dir`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return given or stored or env or default_tracking_uri(results_dir)


def is_remote(uri: str) -> bool:
    """Whether `uri` names a tracking server (rather than a database the client opens)."""
    return urllib.parse.urlparse(uri).scheme in ("http", "https", "databricks")


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast (TrackingError) when a tracking server does not answer; the MLflow client itself
    would retry for minutes. Any HTTP answer, even an error status, counts as reachable."""
    if urllib.parse.urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri}: {reason}. Start it, fix "
            "--tracking-uri (or MLFLOW_TRACKING_URI), or leave both out to track into the "
            "results directory"
        ) from None


def param_name(key: str) -> str:
    """An MLflow-safe parameter name for a search-space key: `keep_probs[0]` -> `keep_probs.0`."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


def lineage_entry(trial_id: Any, epoch: Any, diverged_at: Any = None) -> str:
    """One copy of population-based training, as the lineage tag and results table show it;
    `diverged_at`: the copy replaced the trial's own state, which diverged at that epoch."""
    entry = f"epoch {epoch}: copied trial {trial_id}"
    if diverged_at is None:
        return entry
    return f"{entry} (replacing its own state, diverged at epoch {diverged_at})"


def _failure(uri: str, exc: Exception) -> TrackingError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TrackingError(f"MLflow tracking store {uri}: {first}")


@dataclass
class TrackingStore:
    """An MLflow client bound to one tracking URI, and where local artifacts go."""

    uri: str
    client: Any  # mlflow.MlflowClient
    artifact_root: str | None  # None: the server decides

    @classmethod
    def open(cls, uri: str, results_dir: Path) -> TrackingStore:
        """Connect (creating a SQLite store if needed: 5 to 8 s the first time)."""
        check_reachable(uri)
        if urllib.parse.urlparse(uri).scheme == "sqlite":
            Path(results_dir).mkdir(parents=True, exist_ok=True)
        from mlflow import MlflowClient

        quiet = [logging.getLogger(n) for n in ("alembic", "mlflow.store.db.utils")]
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(logging.WARNING)  # the migration log says nothing actionable
        try:
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)  # opens (or creates) the store
        except TrackingError:
            raise
        except Exception as exc:
            raise _failure(uri, exc) from None
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)
        root = None if is_remote(uri) else (Path(results_dir).resolve() / ARTIFACTS_DIR).as_uri()
        return cls(uri=uri, client=client, artifact_root=root)

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        """The id of experiment `name`, created when missing (and `create`)."""
        try:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"MLflow experiment {name!r} in {self.uri} is deleted: restore it "
                    f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) "
                    "or choose another --name"
                )
            if experiment is not None:
                if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                    self.client.set_experiment_tag(  # a search made before the tag existed
                        experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
                    )
                return experiment.experiment_id
            if not create:
                return None
            tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            if self.artifact_root is None:
                return self.client.create_experiment(name, tags=tags)
            location = f"{self.artifact_root}/{urllib.parse.quote(name)}"
            return self.client.create_experiment(name, artifact_location=location, tags=tags)
        except TrackingError:
            raise
        except Exception as exc:
            raise _failure(self.uri, exc) from None

    def search_runs(self, experiment_id: str, filter_string: str) -> list[Any]:
        """Every run matching `filter_string` (all pages), newest first."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id],
                filter_string=filter_string,
                max_results=1000,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def find_search_run(
        self, experiment_id: str, experiment_dir: Path, search_id: str | None = None
    ) -> Any | None:
        """The newest parent run of the search `search_id` (so a copied or moved experiment
        directory finds its own), else of the search in `experiment_dir`, or None."""
        if search_id:
            runs = self.search_runs(
                experiment_id,
                f"tags.`{TAG_ROLE}` = 'search' and tags.`{TAG_SEARCH_ID}` = '{_quote(search_id)}'",
            )
            if runs:
                return runs[0]
        runs = self.search_runs(
            experiment_id,
            f"tags.`{TAG_ROLE}` = 'search' and tags.`{TAG_EXPERIMENT_DIR}` = "
            f"'{_quote(str(Path(experiment_dir).resolve()))}'",
        )
        return runs[0] if runs else None

    def trial_runs(self, experiment_id: str, parent_run_id: str) -> dict[str, Any]:
        """Tune trial id -> child run of the parent run (the oldest, should there be two)."""
        runs = self.search_runs(experiment_id, f"tags.`{PARENT_TAG}` = '{parent_run_id}'")
        found: dict[str, Any] = {}
        for run in reversed(runs):  # oldest first: the first one logged wins
            trial_id = run.data.tags.get(TAG_TRIAL_ID)
            if trial_id and trial_id not in found:
                found[trial_id] = run
        return found


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class _ChildRun:
    run_id: str
    last_step: int = 0  # the last epoch logged (a resumed trial re-reports none twice)
    lineage: list[str] = field(default_factory=list)  # pbt: the checkpoints it copied
    diverged_at: int | None = None  # pbt: the epoch its own state diverged, until replaced


@dataclass
class SearchTracker:
    """Writes one search into MLflow from the driver; see the module docstring.

    Every call after `start` only queues work for a single writer thread, so it costs the
    caller microseconds; `finish` waits for the queue to drain.
    """

    store: TrackingStore
    experiment_id: str
    parent_run_id: str
    children: dict[str, _ChildRun] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warn: Callable[[str], None] | None = None
    _pool: concurrent.futures.ThreadPoolExecutor | None = None
    _pending: list[concurrent.futures.Future] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        store: TrackingStore,
        experiment_name: str,
        experiment_dir: Path,
        params: Mapping[str, Any],
        *,
        resume: bool,
        search_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> SearchTracker:
        """Find (on resume) or create the parent run of this search and its trials' runs."""
        experiment_id = store.experiment_id(experiment_name)
        experiment_dir = Path(experiment_dir).resolve()
        try:
            parent = (
                store.find_search_run(experiment_id, experiment_dir, search_id) if resume else None
            )
            children: dict[str, _ChildRun] = {}
            client = store.client
            if parent is None:
                run_tags = {
                    TAG_ROLE: "search",
                    TAG_EXPERIMENT_DIR: str(experiment_dir),
                    **({TAG_SEARCH_ID: search_id} if search_id else {}),
                    TAG_STATUS: "running",
                    **(tags or {}),
                }
                parent = client.create_run(
                    experiment_id, run_name=experiment_dir.name, tags=run_tags
                )
                _log_params(client, parent.info.run_id, params)
            else:
                client.update_run(parent.info.run_id, status="RUNNING")
                client.set_tag(parent.info.run_id, TAG_STATUS, "running")
                for trial_id, run in store.trial_runs(experiment_id, parent.info.run_id).items():
                    step = _finite(run.data.metrics.get("epoch")) or 0
                    lineage = run.data.tags.get(TAG_LINEAGE, "")
                    children[trial_id] = _ChildRun(
                        run.info.run_id, int(step), lineage.split("; ") if lineage else []
                    )
        except Exception as exc:
            raise _failure(store.uri, exc) from None
        return cls(
            store=store,
            experiment_id=experiment_id,
            parent_run_id=parent.info.run_id,
            children=children,
            warn=warn,
            _pool=concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gansearch-mlflow"),
        )

    @property
    def is_open(self) -> bool:
        """Whether writes are still accepted (until `finish`, `abandon` or `close`)."""
        return self._pool is not None

    # ------------------------------------------------------------------ queued work

    def _submit(self, work: Callable[[], None]) -> None:
        if self._pool is None:
            return
        self._pending = [f for f in self._pending if not f.done() or self._note(f)]
        self._pending.append(self._pool.submit(work))

    def _note(self, future: concurrent.futures.Future) -> bool:
        """Record a finished job's error (once per kind); False drops it from the pending list."""
        exc = future.exception()
        if exc is not None:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not self.errors and self.warn:
                self.warn(f"MLflow logging failed ({text}); the search goes on")
            self.errors.append(text)
        return False

    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> None:
        """A trial (new or resumed) started: create its child run, or mark it running again."""
        self._submit(lambda: self._start_child(trial_id, dict(params)))

    def trial_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """One epoch's report: every known metric, at step = epoch."""
        self._submit(lambda: self._log_epoch(trial_id, dict(result)))

    def trial_ended(self, trial_id: str, status: str, reason: str) -> None:
        """The trial ended: its Tune status (and why) as tags, the run terminated."""
        self._submit(lambda: self._end_child(trial_id, status, reason))

    def trial_retried(self, trial_id: str, attempt: int) -> None:
        """The trial crashed and is retried from its checkpoint."""
        self._submit(lambda: self._tag_child(trial_id, {"gansearch.retries": str(attempt)}))

    def finish(
        self,
        interrupted: bool,
        artifacts: list[Path] | None = None,
        summary: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Close the search: runs still open become `interrupted`, the parent gets the search's
        `summary` metrics (its best, so the runs table shows it) and `tags`, and is terminated."""
        status = "interrupted" if interrupted else "finished"

        def close() -> None:
            from mlflow.entities import Metric, RunTag

            client = self.store.client
            stamp = int(time.time() * 1000)
            client.log_batch(
                self.parent_run_id,
                metrics=[Metric(k, float(v), stamp, 0) for k, v in (summary or {}).items()],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
            )
            for trial_id, child in self.children.items():
                run = client.get_run(child.run_id)
                if run.info.status == "RUNNING":
                    reason = "the search stopped before this trial ended"
                    self._end_child(trial_id, "interrupted", reason)
            for path in artifacts or []:
                if Path(path).exists():
                    client.log_artifact(self.parent_run_id, str(path))
            client.set_tag(self.parent_run_id, TAG_STATUS, status)
            client.set_terminated(self.parent_run_id, RUN_STATUS[status])

        self._submit(close)
        self.close()

    def abandon(self, reason: str, delete: bool) -> None:
        """The search failed before (or while) running: delete its parent run or mark it failed."""

        def fail() -> None:
            client = self.store.client
            if delete:
                client.delete_run(self.parent_run_id)
                return
            client.set_tag(self.parent_run_id, TAG_STATUS, "failed")
            client.set_tag(self.parent_run_id, TAG_REASON, reason[:5000])
            client.set_terminated(self.parent_run_id, "FAILED")

        self._submit(fail)
        self.close()

    def close(self) -> None:
        """Wait for every queued write; errors were reported through `warn`."""
        if self._pool is None:
            return
        self._pool.shutdown(wait=True)
        for future in self._pending:
            self._note(future)
        self._pending = []
        self._pool = None

    # ------------------------------------------------------------------ the writer thread

    def _start_child(self, trial_id: str, params: dict[str, Any]) -> None:
        client = self.store.client
        child = self.children.get(trial_id)
        if child is not None:
            client.update_run(child.run_id, status="RUNNING")
            client.set_tag(child.run_id, TAG_STATUS, "running")
            return
        tags = {
            PARENT_TAG: self.parent_run_id,
            TAG_ROLE: "trial",
            TAG_TRIAL_ID: trial_id,
            TAG_STATUS: "running",
        }
        run = client.create_run(self.experiment_id, run_name=trial_id, tags=tags)
        self.children[trial_id] = _ChildRun(run.info.run_id)
        _log_params(client, run.info.run_id, params)

    def _child(self, trial_id: str) -> _ChildRun:
        if trial_id not in self.children:  # a result before its start event: never lose it
            self._start_child(trial_id, {})
        return self.children[trial_id]

    def _log_epoch(self, trial_id: str, result: dict[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        child = self._child(trial_id)
        epoch = int(result.get("epoch") or 0)
        if result.get("copied_from"):  # pbt: it goes on from the copied epoch, maybe an earlier one
            child.last_step = min(child.last_step, int(result.get("copied_epoch") or 0))
        if epoch <= child.last_step:  # a resumed trial re-reporting an epoch already logged
            return
        stamp = int(float(result.get("timestamp") or time.time()) * 1000)
        metrics = [
            Metric(key, value, stamp, epoch)
            for key in ("epoch", *EPOCH_METRICS)
            if (value := _finite(result.get(key))) is not None
        ]
        if result.get("diverged"):
            metrics.append(Metric("diverged", 1.0, stamp, epoch))
            child.diverged_at = epoch  # pbt replaces such a member with a copy
        # Population-based training: the mutable values in force (hp.<key>), so the run's charts
        # show its schedule, and the checkpoints it copied (the lineage tag).
        for key, value in (result.get("hp") or {}).items():
            if (number := _finite(value)) is not None:
                metrics.append(Metric(f"hp.{param_name(key)}", number, stamp, epoch))
        tags = []
        if result.get("copied_from"):
            child.lineage.append(
                lineage_entry(result["copied_from"], result.get("copied_epoch"), child.diverged_at)
            )
            child.diverged_at = None
            tags.append(RunTag(TAG_LINEAGE, "; ".join(child.lineage)[:5000]))
        if metrics or tags:
            self.store.client.log_batch(child.run_id, metrics=metrics, tags=tags)
        child.last_step = epoch

    def _end_child(self, trial_id: str, status: str, reason: str) -> None:
        child = self._child(trial_id)
        tags = {TAG_STATUS: status}
        if reason:
            tags[TAG_REASON] = reason[:5000]
        self._tag_child(trial_id, tags)
        self.store.client.set_terminated(child.run_id, RUN_STATUS.get(status, "FINISHED"))

    def _tag_child(self, trial_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        child = self._child(trial_id)
        self.store.client.log_batch(child.run_id, tags=[RunTag(k, v) for k, v in tags.items()])


@dataclass
class ReportLogger:
    """The MLflow writes of `gansearch report`: the test numbers, tags and artifacts of each
    reported trial's run, and Table 1 and the reference rows on the search's parent run.

    Runs a search logged are found by their tags; a search run without tracking gets them
    created here, with the tags SearchTracker gives its own.
    """

    store: TrackingStore
    experiment_id: str
    parent_run_id: str
    trial_runs: dict[str, Any]  # trial id -> its child run, as the search logged them

    @classmethod
    def open(cls, uri: str, experiment_dir: Path, search_id: str | None = None) -> ReportLogger:
        """Open the store and find (or create) the search's parent run and its trial runs."""
        store = TrackingStore.open(uri, experiment_dir.parent)
        experiment_id = store.experiment_id(experiment_dir.name)
        found = store.find_search_run(experiment_id, experiment_dir, search_id)
        if found is not None:
            parent_id = found.info.run_id
        else:
            tags = {TAG_ROLE: "search", TAG_EXPERIMENT_DIR: str(experiment_dir)}
            tags.update({TAG_SEARCH_ID: search_id} if search_id else {})
            tags[TAG_STATUS] = "unknown"
            run = store.client.create_run(experiment_id, run_name=experiment_dir.name, tags=tags)
            store.client.set_terminated(run.info.run_id, "FINISHED")
            parent_id = run.info.run_id
        return cls(store, experiment_id, parent_id, store.trial_runs(experiment_id, parent_id))

    @property
    def uri(self) -> str:
        return self.store.uri

    def log_trial(
        self,
        trial_id: str,
        status: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        step: int,
        tags: Mapping[str, str],
        files: Sequence[Path],
    ) -> str:
        """Log a reported trial's numbers, tags and files on its run (created, with `status`
        and `params`, if the search logged none); returns the run id."""
        from mlflow.entities import Metric, RunTag

        client = self.store.client
        try:
            run = self.trial_runs.get(trial_id)
            if run is None:
                run_tags = {PARENT_TAG: self.parent_run_id, TAG_ROLE: "trial"}
                run_tags.update({TAG_TRIAL_ID: trial_id, TAG_STATUS: status})
                created = client.create_run(self.experiment_id, run_name=trial_id, tags=run_tags)
                run_id = created.info.run_id
                _log_params(client, run_id, params)
                client.set_terminated(run_id, "FINISHED")
            else:
                run_id = run.info.run_id
            stamp = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), stamp, step) for k, v in metrics.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            for path in files:
                client.log_artifact(run_id, str(path), "report")
        except Exception as exc:
            raise TrackingError(
                f"MLflow: cannot log the report of trial {trial_id}: {exc}"
            ) from None
        return run_id

    def log_generator(
        self,
        run_id: str,
        generator: Any,
        noise: NoiseSpec,
        metadata: Mapping[str, Any],
    ) -> str:
        """Log `generator` (a torch module) on a trial's run with MLflow's PyTorch flavour,
        exported with torch.export (loading it needs torch and MLflow, not gansearch), with a
        signature for its noise input and `noise` and `metadata` in the model's metadata.
        Returns the model's URI."""
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        example = noise.draw(2, torch.Generator().manual_seed(0)).numpy()
        generator = generator.eval()
        with torch.no_grad():
            output = generator(torch.from_numpy(example)).numpy()
        meta = {"noise": noise.as_dict(), **metadata}
        try:
            with tempfile.TemporaryDirectory(prefix="gansearch-model-") as directory:
                local = Path(directory) / GENERATOR_ARTIFACT
                mlflow.pytorch.save_model(
                    generator,
                    str(local),
                    signature=infer_signature(example, output),
                    input_example=example,
                    metadata=meta,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                )
                self.store.client.log_artifacts(run_id, str(local), GENERATOR_ARTIFACT)
        except Exception as exc:
            raise _failure(self.uri, exc) from None
        return f"runs:/{run_id}/{GENERATOR_ARTIFACT}"

    def register(self, name: str, run_id: str) -> str:
        """Register the generator logged on `run_id` as a new version of model `name`; returns
        the version."""
        client = self.store.client
        try:
            if not client.search_registered_models(f"name = '{_quote(name)}'"):
                client.create_registered_model(
                    name, description="The best generator of a gansearch search (gansearch report)"
                )
            version = client.create_model_version(
                name, f"runs:/{run_id}/{GENERATOR_ARTIFACT}", run_id=run_id
            )
        except Exception as exc:
            raise _failure(self.uri, exc) from None
        return str(version.version)

    def log_table(
        self,
        folders: Mapping[str, Sequence[Path]],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> None:
        """Table 1 (artifact folders -> files), its numbers (the best configuration's test
        log-likelihood, the reference rows') and tags on the search's parent run."""
        from mlflow.entities import Metric, RunTag

        client = self.store.client
        try:
            for folder, paths in folders.items():
                for path in paths:
                    client.log_artifact(self.parent_run_id, str(path), folder)
            stamp = int(time.time() * 1000)
            client.log_batch(
                self.parent_run_id,
                metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
                tags=[RunTag(k, str(v)) for k, v in tags.items()],
            )
        except Exception as exc:
            raise TrackingError(
                f"MLflow: cannot log Table 1 to run {self.parent_run_id}: {exc}"
            ) from None


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    batch = [Param(param_name(str(k)), str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(batch), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run_id, params=batch[start : start + 100])


# --------------------------------------------------------------------------- reading generators


def reported_generators(
    store: TrackingStore, experiment_dir: Path, search_id: str | None
) -> dict[int, str]:
    """Report rank -> run id of the trial runs of this search that hold a logged generator."""
    experiment_id = store.experiment_id(experiment_dir.name, create=False)
    parent = (
        store.find_search_run(experiment_id, experiment_dir, search_id) if experiment_id else None
    )
    if parent is None:
        return {}
    found: dict[int, str] = {}
    for run in store.trial_runs(experiment_id, parent.info.run_id).values():
        rank = run.data.tags.get("gansearch.report_rank")
        if rank and rank.isdigit() and has_generator(store, run.info.run_id):
            found[int(rank)] = run.info.run_id
    return dict(sorted(found.items()))


def has_generator(store: TrackingStore, run_id: str) -> bool:
    """Whether the run holds a logged generator."""
    try:
        names = {Path(a.path).name for a in store.client.list_artifacts(run_id)}
    except Exception as exc:
        raise _failure(store.uri, exc) from None
    return GENERATOR_ARTIFACT in names


def load_generator(store: TrackingStore, run_id: str) -> tuple[Any, dict[str, Any]]:
    """The generator logged on `run_id` (a torch module; torch.export's, no gansearch class)
    and its metadata (noise, image shape, ...)."""
    import mlflow.artifacts
    import mlflow.pytorch
    from mlflow.models import Model

    quiet = os.environ.get(PROGRESS_BAR_ENV)
    os.environ[PROGRESS_BAR_ENV] = "false"  # seven small files: no progress bar
    try:
        with tempfile.TemporaryDirectory(prefix="gansearch-model-") as directory:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=GENERATOR_ARTIFACT,
                dst_path=directory,
                tracking_uri=store.uri,
            )
            model = mlflow.pytorch.load_model(local)
            metadata = Model.load(local).metadata or {}
    except Exception as exc:
        raise _failure(store.uri, exc) from None
    finally:
        if quiet is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = quiet
    return model, dict(metadata)
