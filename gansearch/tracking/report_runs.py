"""The MLflow writes of `gansearch report`, on the runs a search logged (found by their tags,
through gansearch.tracking.lookup, wherever the experiment directory was copied or moved) or,
for a search run without tracking, on runs created here with the same tags: each reported
trial's test numbers, tags, files and generator, and Table 1 on the search's parent run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gansearch.tracking.lookup import find_search
from gansearch.tracking.models import log_generator, register_generator
from gansearch.tracking.store import (
    TrackingError,
    TrackingStore,
    _log_params,
    search_run_tags,
    trial_run_tags,
)

if TYPE_CHECKING:
    from gansearch.models import NoiseSpec


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
        """Open the store and find (find_search) or create the search's parent run and its
        trial runs."""
        store = TrackingStore.open(uri, experiment_dir.parent)
        found = find_search(store, experiment_dir, search_id)
        if found is not None:
            experiment_id, parent_id = found.experiment_id, found.run_id
        else:
            experiment_id = store.experiment_id(experiment_dir.name)
            tags = search_run_tags(experiment_dir, search_id, "unknown")
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
                run_tags = trial_run_tags(self.parent_run_id, trial_id, status)
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
        """Log `generator` (a torch module) on a trial's run as an MLflow model (see
        gansearch.tracking.models.log_generator); returns the model's URI."""
        return log_generator(self.store, run_id, generator, noise, metadata)

    def register(self, name: str, run_id: str) -> str:
        """Register the generator logged on `run_id` as a new version of model `name`; returns
        the version."""
        return register_generator(self.store, name, run_id)

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

    def tag_search(self, tags: Mapping[str, str]) -> None:
        """Set `tags` on the search's parent run (a report that logs no Table 1 says why)."""
        from mlflow.entities import RunTag

        try:
            self.store.client.log_batch(
                self.parent_run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()]
            )
        except Exception as exc:
            raise TrackingError(f"MLflow: cannot tag run {self.parent_run_id}: {exc}") from None
