"""Where a search's runs are in MLflow: the experiment and parent run of the search in an
experiment directory, found the same way by every command that reads them (`report`, `ui`).

A search logs into the MLflow experiment named after its directory, and tags its parent run with
the search id stored in the directory. A directory copied or renamed (`cp -r runs/a runs/b`)
keeps the search id but not the name, so the search id is looked up in every experiment when the
directory's own name finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gansearch.tracking.store import (
    TAG_ROLE,
    TAG_SEARCH_ID,
    TrackingError,
    TrackingStore,
    _failure,
    _quote,
)

_IDS_PER_QUERY = 100  # experiment ids per search_runs call


@dataclass(frozen=True)
class FoundSearch:
    """A search's MLflow experiment and parent run."""

    experiment_id: str
    run: Any  # mlflow.entities.Run: the search's parent run

    @property
    def run_id(self) -> str:
        return self.run.info.run_id


def find_search(
    store: TrackingStore, experiment_dir: Path, search_id: str | None
) -> FoundSearch | None:
    """The experiment and parent run of the search in `experiment_dir`: first in the MLflow
    experiment named after the directory (by `search_id`, then by the directory), else by
    `search_id` in any experiment (the newest such run); None when the store has neither."""
    experiment_dir = Path(experiment_dir)
    experiment_id = store.experiment_id(experiment_dir.name, create=False)
    if experiment_id is not None:
        run = store.find_search_run(experiment_id, experiment_dir, search_id)
        if run is not None:
            return FoundSearch(experiment_id, run)
    if not search_id:
        return None
    try:
        return _by_search_id(store, search_id)
    except TrackingError:
        raise
    except Exception as exc:
        raise _failure(store.uri, exc) from None


def _by_search_id(store: TrackingStore, search_id: str) -> FoundSearch | None:
    """The newest parent run tagged with `search_id` in any active experiment."""
    ids = _experiment_ids(store)
    query = f"tags.`{TAG_ROLE}` = 'search' and tags.`{TAG_SEARCH_ID}` = '{_quote(search_id)}'"
    newest = None
    for start in range(0, len(ids), _IDS_PER_QUERY):
        runs = store.client.search_runs(
            ids[start : start + _IDS_PER_QUERY],
            filter_string=query,
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if runs and (newest is None or runs[0].info.start_time > newest.info.start_time):
            newest = runs[0]
    return None if newest is None else FoundSearch(newest.info.experiment_id, newest)


def _experiment_ids(store: TrackingStore) -> list[str]:
    """The ids of every active experiment in the store (all pages)."""
    ids: list[str] = []
    token = None
    while True:
        page = store.client.search_experiments(max_results=1000, page_token=token)
        ids.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return ids
