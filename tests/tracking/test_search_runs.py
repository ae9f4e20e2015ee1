"""A search's MLflow runs (gansearch.tracking.search_runs): one run per trial under one parent,
kept across Ctrl-C and `--resume`, with the trial's parameters, epoch metrics and Tune outcome,
and the search's best on the parent. The search is conftest's `tracked_search` (interrupted after
two trials, resumed)."""

from __future__ import annotations

import pytest

from gansearch.tracking import EPOCH_METRICS, param_name
from tests.support.tracked_search import TRIALS

pytestmark = pytest.mark.slow


def test_interrupted_search_resumes_into_the_same_runs(tracked_search):
    assert tracked_search.first_code == 130, tracked_search.first_err
    assert tracked_search.code == 0, tracked_search.err
    assert len(tracked_search.runs_before) >= 2
    parents = tracked_search.runs("search")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = tracked_search.runs("trial")
    by_trial = {r.data.tags["gansearch.trial_id"]: r for r in children}
    assert len(children) == TRIALS == len(by_trial) == len(tracked_search.results)
    assert set(by_trial) == set(tracked_search.results["trial_id"])
    for trial_id, run_id in tracked_search.runs_before.items():  # resumed, not duplicated
        assert by_trial[trial_id].info.run_id == run_id
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        history = tracked_search.client.get_metric_history(run.info.run_id, "valid_ll")
        steps = [m.step for m in history]
        epochs = int(tracked_search.results.set_index("trial_id").loc[run.info.run_name, "epochs"])
        assert sorted(steps) == list(range(1, epochs + 1)), "an epoch logged twice or lost"


def test_child_runs_hold_params_epoch_metrics_and_tune_status(tracked_search):
    results = tracked_search.results.set_index("trial_id")
    for run in tracked_search.runs("trial"):
        row = results.loc[run.data.tags["gansearch.trial_id"]]
        assert run.data.tags["gansearch.status"] == row["status"]
        assert run.info.status == "FINISHED"
        assert float(run.data.params[param_name("optim.lr_d")]) == pytest.approx(row["optim.lr_d"])
        assert run.data.params["optim.k"] == str(row["optim.k"])
        assert run.data.params["generator.units"] == str(row["generator.units"])
        quality = {"fid", "classes_covered", "class_kl", "confidence"}  # logged only if asked
        assert set(EPOCH_METRICS) - {"valid_se"} - quality <= set(run.data.metrics)
        assert run.data.metrics["valid_ll"] == pytest.approx(
            tracked_search.client.get_metric_history(run.info.run_id, "valid_ll")[-1].value
        )
    assert {"finished", "stopped early"} >= set(results["status"])


def test_parent_run_shows_the_searchs_best_and_is_a_training_experiment(tracked_search):
    parent = tracked_search.runs("search")[0]
    best = tracked_search.results.iloc[0]  # ranked, best first
    assert parent.data.metrics["best_valid_ll"] == pytest.approx(best["valid_ll"])
    assert parent.data.tags["gansearch.best_trial"] == best["trial_id"]
    experiment = tracked_search.client.get_experiment(tracked_search.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
