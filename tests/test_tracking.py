"""MLflow tracking of a search: one run per trial under one parent, kept across Ctrl-C and
`--resume`, with the trial's parameters, epoch metrics and Tune outcome; an unreachable server
stops a search before any trial. The search is conftest's `tracked_search` (interrupted after two
trials, resumed)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from processes import free_port
from tracked_search import SMALL, TRIALS

from gansearch.cli import main
from gansearch.tracking import EPOCH_METRICS, param_name

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


def test_unreachable_tracking_server_is_reported_before_trials(tmp_path, capsys):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--tracking-uri", uri]
    assert main(args) == 2
    assert time.monotonic() - started < 15  # no Ray started, no retries for minutes
    err = capsys.readouterr().err
    assert f"cannot reach the MLflow tracking server at {uri}" in err and "Traceback" not in err
    assert not (tmp_path / "small").exists()


def test_importing_tracking_leaves_mlflow_unloaded():
    """MLflow takes seconds to import: the package loads it only when a store is opened."""
    code = "import sys, gansearch.tracking; print(sorted({'mlflow', 'ray'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_parent_run_shows_the_searchs_best_and_is_a_training_experiment(tracked_search):
    parent = tracked_search.runs("search")[0]
    best = tracked_search.results.iloc[0]  # ranked, best first
    assert parent.data.metrics["best_valid_ll"] == pytest.approx(best["valid_ll"])
    assert parent.data.tags["gansearch.best_trial"] == best["trial_id"]
    experiment = tracked_search.client.get_experiment(tracked_search.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_optuna_study_holds_one_trial_per_tune_trial_after_the_resume(tracked_search):
    import optuna

    from gansearch.experiment import optuna_study_name

    storage = f"sqlite:///{tracked_search.root / 'optuna.db'}"
    names = optuna.get_all_study_names(storage)
    assert names == [optuna_study_name(tracked_search.root / "small")]
    study = optuna.load_study(study_name=names[0], storage=storage)
    trained = [t for t in study.trials if "reused_from" not in t.user_attrs]
    by_tune = {t.user_attrs.get("tune_trial_id"): t for t in trained}
    assert set(by_tune) == set(tracked_search.results["trial_id"]) and len(trained) == TRIALS
    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                optuna.trial.TrialState.PRUNED}  # fmt: skip
    assert all(t.state in finished for t in study.trials)
    results = tracked_search.results.set_index("trial_id")
    for trial_id, trial in by_tune.items():
        assert trial.params["optim.k"] == results.loc[trial_id, "optim.k"]
