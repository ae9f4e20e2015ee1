"""What a search can optimise: metric names, which direction is better, and the Pareto front.

The paper's objective, the validation Parzen log-likelihood (`valid_ll`, maximised), is the
default. The classifier metrics of gansearch.quality can join it (or replace it); with several
objectives the search is multi-objective and its result is a Pareto front, not one best trial.
Light on purpose (numpy only): the search-space loader and the report both import it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PARZEN_METRIC = "valid_ll"
# The classifier's metrics (gansearch.quality) and the direction that is better.
QUALITY_METRICS: dict[str, str] = {
    "fid": "min",
    "classes_covered": "max",
    "class_kl": "min",
    "confidence": "max",
}
METRICS: dict[str, str] = {PARZEN_METRIC: "max", **QUALITY_METRICS}


def better(metric: str, a: float, b: float) -> bool:
    """Whether value `a` of `metric` is strictly better than `b`."""
    return a > b if METRICS[metric] == "max" else a < b


def pareto_mask(values: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Which rows of (n, m) `values` are non-dominated, each column maximised or minimised.

    A row is dominated when another is at least as good in every column and better in one.
    Rows with a NaN are never on the front. O(n^2 m), fine for the trials of a search.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(modes):
        raise ValueError(f"values of shape {values.shape} do not match {len(modes)} modes")
    signs = np.array([1.0 if mode == "max" else -1.0 for mode in modes])
    score = values * signs  # now every column is maximised
    valid = ~np.isnan(score).any(axis=1)
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        others = score[valid]
        dominated = np.all(others >= score[i], axis=1) & np.any(others > score[i], axis=1)
        mask[i] = not dominated.any()
    return mask
