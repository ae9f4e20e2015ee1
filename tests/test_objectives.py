"""The objective metrics' directions and the Pareto front of a multi-objective search."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gansearch.objectives import METRICS, better, pareto_mask


def test_directions_of_the_objective_metrics() -> None:
    assert METRICS == {
        "valid_ll": "max",
        "fid": "min",
        "classes_covered": "max",
        "class_kl": "min",
        "confidence": "max",
    }
    assert better("valid_ll", 2.0, 1.0) and not better("valid_ll", 1.0, 2.0)
    assert better("fid", 1.0, 2.0) and not better("fid", 2.0, 2.0)


def test_pareto_front_of_a_log_likelihood_to_maximise_and_a_fid_to_minimise() -> None:
    values = np.array(
        [
            [10.0, 50.0],  # on the front: best log-likelihood
            [5.0, 20.0],  # on the front: a trade-off
            [4.0, 30.0],  # dominated by the row above (lower LL, higher FID)
            [1.0, 10.0],  # on the front: best FID
            [1.0, 12.0],  # dominated by the row above (same LL, worse FID)
            [math.nan, 1.0],  # no value: never on the front
            [5.0, 20.0],  # a duplicate of a front member is not dominated by it
        ]
    )
    mask = pareto_mask(values, ["max", "min"])
    assert mask.tolist() == [True, True, False, True, False, False, True]


def test_every_column_maximised_or_minimised_as_told() -> None:
    values = np.array([[1.0, 1.0], [2.0, 2.0]])
    assert pareto_mask(values, ["max", "max"]).tolist() == [False, True]
    assert pareto_mask(values, ["min", "min"]).tolist() == [True, False]
    assert pareto_mask(values, ["max", "min"]).tolist() == [True, True]


def test_values_must_match_the_modes() -> None:
    with pytest.raises(ValueError, match="do not match"):
        pareto_mask(np.zeros((3, 2)), ["max"])
