"""MLflow tracking: one experiment per search space, a parent run per search, a nested child run
per trial. The only part of gansearch that imports MLflow, and only when it is used (importing
it costs seconds).

    store.py        the tracking store (URIs, the client, finding runs), the tags and TrackingError
    lookup.py       where a search's runs are (by directory name, else by search id: a copy)
    search_runs.py  SearchTracker: a search's runs while it runs, from the driver
    report_runs.py  ReportLogger: the writes of `gansearch report`
    models.py       generators as MLflow models: logged, registered, found and loaded back

Imports go one way: lookup.py imports store.py, search_runs.py and models.py import store.py
and lookup.py, report_runs.py imports all three. Import from here: every public name is re-exported.
"""

from gansearch.tracking.lookup import FoundSearch, find_search
from gansearch.tracking.models import (
    GENERATOR_ARTIFACT,
    PROGRESS_BAR_ENV,
    has_generator,
    load_generator,
    log_generator,
    model_name,
    register_generator,
    reported_generators,
)
from gansearch.tracking.report_runs import ReportLogger
from gansearch.tracking.search_runs import (
    EPOCH_METRICS,
    RUN_STATUS,
    SearchTracker,
    lineage_entry,
)
from gansearch.tracking.store import (
    ARTIFACTS_DIR,
    DB_FILE,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    PARENT_TAG,
    TAG_EXPERIMENT_DIR,
    TAG_LINEAGE,
    TAG_REASON,
    TAG_REPORT_RANK,
    TAG_ROLE,
    TAG_SEARCH_ID,
    TAG_STATUS,
    TAG_TRIAL_ID,
    TrackingError,
    TrackingStore,
    check_reachable,
    default_tracking_uri,
    is_remote,
    param_name,
    resolve_tracking_uri,
    search_run_tags,
    trial_run_tags,
)

__all__ = [
    "FoundSearch",
    "find_search",
    "ARTIFACTS_DIR",
    "DB_FILE",
    "EPOCH_METRICS",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "GENERATOR_ARTIFACT",
    "PARENT_TAG",
    "PROGRESS_BAR_ENV",
    "RUN_STATUS",
    "TAG_EXPERIMENT_DIR",
    "TAG_LINEAGE",
    "TAG_REASON",
    "TAG_REPORT_RANK",
    "TAG_ROLE",
    "TAG_SEARCH_ID",
    "TAG_STATUS",
    "TAG_TRIAL_ID",
    "ReportLogger",
    "SearchTracker",
    "TrackingError",
    "TrackingStore",
    "check_reachable",
    "default_tracking_uri",
    "has_generator",
    "is_remote",
    "lineage_entry",
    "load_generator",
    "log_generator",
    "model_name",
    "param_name",
    "register_generator",
    "reported_generators",
    "resolve_tracking_uri",
    "search_run_tags",
    "trial_run_tags",
]
