"""A search's MLflow runs, written while it runs: the search's parent run and a nested child run
per trial, with the trial's parameters, epoch metrics, Tune outcome and (pbt) lineage.

    store = TrackingStore.open(resolve_tracking_uri(None, results_dir, None), results_dir)
    tracker = SearchTracker.start(store, "digits-quick", experiment_dir, params, resume=False)
    tracker.trial_started("a1b2", {"optim.lr_d": 0.1})      # from a Ray Tune callback
    tracker.trial_result("a1b2", {"epoch": 1, "valid_ll": 123.4, ...})
    tracker.trial_ended("a1b2", "stopped early", "")
    tracker.finish(interrupted=False)

Everything is written from the driver (never from trials: SQLite takes one writer), through one
background thread, so a slow store never holds up Ray Tune's event loop. A resumed search finds
its runs again by their tags and adds to them. Nothing here imports Ray.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gansearch.errors import first_line
from gansearch.outcomes import DIVERGED, FAILED, FINISHED, INTERRUPTED, STOPPED_EARLY
from gansearch.tracking.lookup import find_search
from gansearch.tracking.store import (
    TAG_LINEAGE,
    TAG_REASON,
    TAG_STATUS,
    TrackingStore,
    _failure,
    _log_params,
    param_name,
    search_run_tags,
    trial_run_tags,
)

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
    FINISHED: "FINISHED",
    STOPPED_EARLY: "FINISHED",
    DIVERGED: "FAILED",
    FAILED: "FAILED",
    INTERRUPTED: "KILLED",
}


def lineage_entry(trial_id: Any, epoch: Any, diverged_at: Any = None) -> str:
    """One copy of population-based training, as the lineage tag and results table show it;
    `diverged_at`: the copy replaced the trial's own state, which diverged at that epoch."""
    entry = f"epoch {epoch}: copied trial {trial_id}"
    if diverged_at is None:
        return entry
    return f"{entry} (replacing its own state, diverged at epoch {diverged_at})"


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
        """Find (on resume, where `gansearch report` finds it: a renamed copy too) or create the
        parent run of this search and its trials' runs."""
        experiment_dir = Path(experiment_dir).resolve()
        found = find_search(store, experiment_dir, search_id) if resume else None
        experiment_id = found.experiment_id if found else store.experiment_id(experiment_name)
        try:
            parent = found.run if found else None
            children: dict[str, _ChildRun] = {}
            client = store.client
            if parent is None:
                run_tags = search_run_tags(experiment_dir, search_id, "running", tags)
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
            text = first_line(exc)
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
        status = INTERRUPTED if interrupted else FINISHED

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
                    self._end_child(trial_id, INTERRUPTED, reason)
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
            client.set_tag(self.parent_run_id, TAG_STATUS, FAILED)
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
        tags = trial_run_tags(self.parent_run_id, trial_id, "running")
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
        if result.get("diverged"):  # after this report's own copy: pbt replaces the state
            child.diverged_at = epoch
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
