"""Shared fixtures: where the real MNIST files are, and a private cache for every test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gansearch.data import idx

FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def _require(what: str) -> None:
    """Outside CI a missing data set skips (with the reason shown); in CI it fails."""
    message = f"{what} not found; CI must provide it (see .ci/run)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the Arrow cache and the signing key of the tests out of the user's directories."""
    os.environ["GANSEARCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("gansearch-cache"))
    os.environ["GANSEARCH_KEY_FILE"] = str(tmp_path_factory.mktemp("gansearch-key") / "key")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory holding the four real MNIST IDX files: GANSEARCH_DATA_DIR's (.ci/run sets
    it)."""
    given = os.environ.get("GANSEARCH_DATA_DIR")
    if given and idx.find_files(idx.MNIST, Path(given)):
        return Path(given)
    _require(f"real MNIST in GANSEARCH_DATA_DIR ({given or 'unset'})")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """Debian's dataset-fashion-mnist files."""
    if idx.find_files(idx.FASHION_MNIST, FASHION_DEBIAN_DIR):
        return FASHION_DEBIAN_DIR
    _require("Fashion-MNIST (Debian package dataset-fashion-mnist)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def digits_scorer():
    """The quality classifier for scikit-learn's digits, trained once into the session cache."""
    from gansearch.data import load_dataset
    from gansearch.quality import load_scorer

    return load_scorer(load_dataset("digits"))


@pytest.fixture(scope="session")
def mnist_scorer(mnist_dir: Path):
    """The quality classifier for real MNIST, trained once (about 90 s) into the session cache."""
    from gansearch.data import load_dataset
    from gansearch.quality import load_scorer

    return load_scorer(load_dataset("mnist", mnist_dir))


@pytest.fixture(scope="session")
def tracked_search(tmp_path_factory: pytest.TempPathFactory):
    """A small digits search, interrupted and resumed, with MLflow runs and a Table 1 report
    (tests/support/tracked_search.py); the tracking and report tests share it."""
    from tests.support.tracked_search import run_tracked_search

    return run_tracked_search(tmp_path_factory.mktemp("tracked"))


@pytest.fixture(scope="session")
def diverged_pbt_search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished digits pbt search (tests/fixtures/pbt_diverge.yaml) in which the second member
    diverged at epoch 3; its results directory (the experiment is `pbt-diverge`). The pbt, `curves`
    and `train --from` tests share it."""
    import subprocess
    import sys

    results = tmp_path_factory.mktemp("pbt-diverge")
    space = Path(__file__).parent / "fixtures" / "pbt_diverge.yaml"
    command = [sys.executable, "-m", "gansearch.cli", "run", "--space", str(space)]
    done = subprocess.run(
        [*command, "--results-dir", str(results), "--report-top", "0"],
        capture_output=True,
        text=True,
        cwd=results,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (results / "stderr.txt").write_text(done.stderr)
    return results


# Fixtures that train a classifier or run a search: every test that uses one is slow.
SLOW_FIXTURES = {"mnist_scorer", "digits_scorer", "tracked_search", "diverged_pbt_search"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use a slow fixture `slow`, so that `-m "not slow"` stays quick."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
