"""Where data sets and caches live: explicit argument, then GANSEARCH_DATA_DIR, then a user cache.

Precedence is strict: an explicit directory is used even if it lacks the files (they are then
downloaded into it), so a user always knows which directory gansearch read.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_DIR_ENV = "GANSEARCH_DATA_DIR"
CACHE_DIR_ENV = "GANSEARCH_CACHE_DIR"


def cache_dir() -> Path:
    """Per-user cache directory (GANSEARCH_CACHE_DIR overrides the platform default)."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("gansearch"))


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Return the data directory to use and where that choice came from (for messages)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser(), "the --data-dir argument"
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser(), f"the {DATA_DIR_ENV} environment variable"
    return cache_dir() / "data", "the per-user cache directory"
