"""The driver (gansearch.search.driver): `gansearch run` end to end on a real (small) search, with
Ray Tune, Optuna, ASHA, failures and resume, and what it refuses before any trial starts.

The end-to-end tests start a local Ray (5 to 10 s each) and train real trials on the bundled
digits.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from gansearch.cli import main
from gansearch.experiment import read_results, read_trial_log
from gansearch.search.optuna_search import ReusingOptunaSearch
from gansearch.signing import KEY_FILE_ENV, SIGNATURES_FILE, Signatures, load_key
from tests.support.processes import processes_with_env

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "search_spaces" / "digits.yaml"
PARETO = REPO / "search_spaces" / "digits_pareto.yaml"
SMALL = REPO / "tests" / "fixtures" / "small_space.yaml"


@pytest.fixture(autouse=True)
def _own_key(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A signing key of the test's own (its searches and resumes inherit it), never the user's."""
    path = tmp_path_factory.mktemp("key") / "signing-key"
    monkeypatch.setenv(KEY_FILE_ENV, str(path))
    return path


class _Payload:
    """Unpickled, it creates `marker`: proof that a crafted pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _crafted(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker))


def study_of(experiment_dir: Path) -> optuna.Study:
    """The Optuna study the searcher saved with the experiment."""
    searcher = ReusingOptunaSearch()
    searcher.restore_from_dir(str(experiment_dir))
    return searcher._ot_study


@pytest.mark.slow
def test_small_search_end_to_end(tmp_path, capsys):
    args = ["run", "--space", str(DIGITS), "--results-dir", str(tmp_path), "--max-epochs", "12"]
    assert main([*args, "--progress-interval", "2"]) == 0
    out, err = capsys.readouterr()
    table = read_results(tmp_path / "digits-quick")
    assert len(table) == 8 and set(table["status"]) <= {"finished", "stopped early"}
    stopped = table[table["status"] == "stopped early"]
    assert len(stopped) >= 1, "ASHA stopped no trial"
    assert (stopped["epochs"] < 12).all()
    assert (table.loc[table["status"] == "finished", "epochs"] == 12).all()
    assert table["valid_ll"].is_monotonic_decreasing  # best first
    assert table["optim.lr_d"].between(0.01, 0.5).all() and table["optim.k"].between(1, 3).all()
    # The leaderboard shows the best trial first, with its parameters.
    best = table.iloc[0]
    assert "best 8 of 8 trials" in out
    assert f"{best['trial_id']:<12} {best['valid_ll']:15.2f}" in out
    assert "trials of 8:" in err and "stopped early after" in err
    # The status was computed once, when each trial ended, into the trial log the table reads.
    log = read_trial_log(tmp_path / "digits-quick")
    assert set(log) == set(table["trial_id"])
    statuses = dict(zip(table["trial_id"], table["status"], strict=True))
    assert {t: e["status"] for t, e in log.items()} == statuses
    # Optuna saw every trial end: nothing left RUNNING.
    states = [t.state for t in study_of(tmp_path / "digits-quick").trials]
    assert len(states) == 8 and optuna.trial.TrialState.RUNNING not in states
    # Each 1-CPU trial ran its torch on one thread (no oversubscription).
    assert (table["threads"] == 1).all()
    # Tune kept each trial's best-validation checkpoint beside its latest one.
    for row in table.to_dict("records"):
        best = torch.load(Path(row["best_checkpoint"]) / "trainer.pt", weights_only=True)
        latest = torch.load(Path(row["checkpoint"]) / "trainer.pt", weights_only=True)
        assert (best["epoch"], latest["epoch"]) == (row["best_epoch"], row["epochs"])
    assert (table["best_epoch"] < table["epochs"]).any(), "no trial peaked early: proves little"


@pytest.mark.slow
def test_multi_objective_search_finds_a_pareto_front_of_parzen_and_fid(
    tmp_path, capsys, digits_scorer
):
    from mlflow import MlflowClient

    args = ["run", "--space", str(PARETO), "--results-dir", str(tmp_path), "--max-epochs", "12"]
    assert main([*args, "--report-top", "2"]) == 0
    out, _ = capsys.readouterr()
    experiment = tmp_path / "digits-pareto"
    table = pd.read_parquet(experiment / "results.parquet")
    assert len(table) == 8
    finals = table[["final_valid_ll", "final_fid"]].to_numpy()
    assert np.isfinite(finals).all() and (table["fid"] <= table["final_fid"]).all()
    # The front, checked by hand: no trial has a higher LL and a lower FID than a front member,
    # and every other trial has one that beats it on both.
    front = table[table["pareto"]]
    assert len(front) >= 1 and table["pareto"].iloc[: len(front)].all()  # front first
    for row in table.itertuples():
        beaten = [
            other.trial_id
            for other in table.itertuples()
            if other.final_valid_ll >= row.final_valid_ll
            and other.final_fid <= row.final_fid
            and (other.final_valid_ll, other.final_fid) != (row.final_valid_ll, row.final_fid)
        ]
        assert bool(beaten) != row.pareto, (row.trial_id, beaten)
    assert f"Pareto front of 8 trials ({len(front)} trials" in out
    for row in front.itertuples():
        assert f"{row.trial_id:<12} {row.final_valid_ll:15.2f} {row.final_fid:15.2f}" in out
    # Optuna searched both objectives, with NSGA-II, and got each trial's final values.
    study = study_of(experiment)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert type(study.sampler).__name__ == "NSGAIISampler"
    trained = [t for t in study.trials if "reused_from" not in t.user_attrs]
    told = sorted(tuple(round(v, 6) for v in t.values) for t in trained)
    assert told == sorted(tuple(round(v, 6) for v in pair) for pair in finals)
    for reused in (t for t in study.trials if "reused_from" in t.user_attrs):  # NSGA-II repeats
        earlier = study.trials[reused.user_attrs["reused_from"]]
        assert reused.params == earlier.params and reused.values == earlier.values
    # MLflow has FID and coverage at every evaluated epoch of every trial.
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (exp,) = [e for e in client.search_experiments() if e.name == "digits-pareto"]
    children = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("gansearch.trial_id")
    ]
    assert len(children) == 8
    for run in children:
        fid = client.get_metric_history(run.info.run_id, "fid")
        covered = client.get_metric_history(run.info.run_id, "classes_covered")
        epochs = int(run.data.metrics["epoch"])
        assert [m.step for m in fid] == list(range(1, epochs + 1)) == [m.step for m in covered]
    # The report evaluates the front (not the best valid_ll) and logs its table and scatter plot.
    report = experiment / "report"
    front_md = (report / "pareto.md").read_text()
    for row in front.itertuples():
        assert f"| {row.trial_id} | {row.final_valid_ll:.2f} | {row.final_fid:.2f} |" in front_md
    evaluated = pd.read_csv(report / "table1.csv")
    ours = evaluated[evaluated["source"] == "gansearch"]
    assert set(ours["trial_id"]) <= set(front["trial_id"]) and len(ours) == min(2, len(front))
    assert (report / "pareto.png").stat().st_size > 0
    (parent,) = [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.info.run_id not in {c.info.run_id for c in children}
    ]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "pareto")}
    assert logged == {"pareto/pareto.md", "pareto/pareto.csv", "pareto/pareto.png"}


@pytest.mark.slow
def test_divergence_fails_in_optuna_and_crashes_are_retried(tmp_path, capsys):
    space = SMALL.read_text().replace(
        "  optim.lr_d: {distribution: loguniform, low: 0.01, high: 0.5}",
        "  optim.lr_d: {distribution: categorical, choices: [0.05, 1.0e+30]}",
    )
    space = space.replace(
        "search: {algorithm: tpe, seed: 0}", "search: {algorithm: random, seed: 3}"
    )
    space = space.replace("scheduler: {type: asha,", "scheduler: {type: none,")
    space = space.replace("max_failures: 1", "max_failures: 2")
    space += "chaos: {crash_at_epoch: 2, kill_at_epoch: 3}\n"
    path = tmp_path / "faulty.yaml"
    path.write_text(space)
    args = ["run", "--space", str(path), "--results-dir", str(tmp_path), "--trials", "5"]
    assert main([*args, "--progress-interval", "100"]) == 0
    err = capsys.readouterr().err
    table = pd.read_parquet(tmp_path / "small" / "results.parquet")
    diverged = table[table["optim.lr_d"] == 1e30]
    healthy = table[table["optim.lr_d"] == 0.05]
    assert len(diverged) >= 1 and len(healthy) >= 1, "the seed must give both kinds of trial"
    assert (diverged["status"] == "diverged").all()
    assert diverged["reason"].str.contains("training diverged at epoch 1").all()
    # Every healthy trial crashed at epoch 2 and was killed at epoch 3, and still finished.
    assert (healthy["status"] == "finished").all() and (healthy["epochs"] == 3).all()
    assert err.count("crashed; retrying") >= 2 * len(healthy)
    study = study_of(tmp_path / "small")
    trained = [t for t in study.trials if "reused_from" not in t.user_attrs]  # not repeats
    states = {t.params["optim.lr_d"]: t.state for t in trained}
    failed = [t for t in trained if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == len(diverged) and all(t.params["optim.lr_d"] == 1e30 for t in failed)
    assert states[0.05] == optuna.trial.TrialState.COMPLETE


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gansearch.cli", *args]


@pytest.mark.slow
def test_interrupted_search_resumes_without_rerunning_trials(tmp_path):
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--trials", "6"]
    args += ["--concurrency", "1", "--progress-interval", "1"]
    driver = subprocess.Popen(
        _cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    ended_before: list[str] = []
    deadline = time.monotonic() + 240
    try:
        for line in driver.stderr:
            match = re.search(r"\] trial (\w+) (finished|stopped early) after", line)
            if match:
                ended_before.append(match[1])
            if len(ended_before) >= 2 or time.monotonic() > deadline:
                break
        driver.send_signal(signal.SIGINT)  # Ctrl-C
        out, rest = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert len(ended_before) >= 2
    assert driver.returncode == 130, rest
    assert "continue it with: gansearch run" in rest and "--resume" in rest

    other_budget = subprocess.run(
        _cli(*args[:5], "--resume", "--trials", "7"), capture_output=True, text=True, timeout=120
    )
    assert other_budget.returncode == 2
    assert "the search being resumed has trials 6" in other_budget.stderr

    resumed = subprocess.run(
        _cli(*args[:5], "--resume", "--progress-interval", "100"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    for trial_id in ended_before:  # finished trials were not run again
        assert not re.search(rf"\] trial {trial_id} (finished|stopped early)", resumed.stderr)
    table = pd.read_parquet(tmp_path / "small" / "results.parquet")
    assert len(table) == 6 and table["trial_id"].is_unique
    assert set(table["status"]) <= {"finished", "stopped early"}
    assert table["wall_seconds"].notna().all()  # also of the trials that ended before the resume
    trials = study_of(tmp_path / "small").trials
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    assert "best 6 of 6 trials" in resumed.stdout


@pytest.mark.slow
def test_killed_driver_resumes_and_loses_no_trial(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="gs-", dir="/tmp")  # short: Ray's socket paths
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--trials", "5"]
    args += ["--concurrency", "1", "--progress-interval", "1"]
    driver = subprocess.Popen(
        _cli(*args), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    ended = 0
    try:
        for line in driver.stderr:
            ended += bool(re.search(r"\] trial \w+ (finished|stopped early) after", line))
            if ended >= 2:
                break
        time.sleep(2)  # let Tune snapshot the experiment, as it does every few seconds
        driver.kill()  # SIGKILL: no chance to clean up
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid in processes_with_env(f"RAY_TMPDIR={ray_tmp}"):  # the orphaned Ray
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert ended >= 2
    resumed = subprocess.run(
        _cli(*args[:5], "--resume", "--progress-interval", "100"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    table = pd.read_parquet(tmp_path / "small" / "results.parquet")
    assert len(table) == 5 and table["trial_id"].is_unique
    assert set(table["status"]) <= {"finished", "stopped early"}
    trials = study_of(tmp_path / "small").trials
    seen = [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert all(t.state.is_finished() for t in trials), seen
    # One Optuna trial per Tune trial. A resumed sampler may propose again a configuration
    # that was trained after its last snapshot: that proposal is answered with the earlier
    # result (an extra Optuna trial marked `reused_from`), never trained twice.
    trained = [t for t in trials if "reused_from" not in t.user_attrs]
    assert len(trained) == 5, seen
    assert {t.user_attrs["tune_trial_id"] for t in trained} == set(table["trial_id"]), seen


@pytest.mark.slow
def test_resume_without_an_experiment_is_refused(tmp_path, capsys):
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path)]
    assert main([*args, "--resume"]) == 2
    assert "no experiment to continue" in capsys.readouterr().err
    assert not (tmp_path / "small").exists()


@pytest.mark.slow
def test_missing_data_is_reported_before_ray_starts(tmp_path, capsys):
    space = SMALL.read_text().replace("dataset: {name: digits}", "dataset: {name: tfd}")
    path = tmp_path / "tfd.yaml"
    path.write_text(space)
    args = ["run", "--space", str(path), "--results-dir", str(tmp_path / "runs")]
    assert main([*args, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"TFD_48x48.mat not found in {tmp_path}" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_results_dir_uri_is_refused_with_the_alternative(tmp_path, capsys):
    from gansearch.cli import main

    args = ["run", "--space", str(SMALL), "--results-dir", "s3://bucket/runs"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--results-dir / results.dir s3://bucket/runs" in err and "Traceback" not in err
    assert "every node mounts at the same path" in err


def _fake_experiment(results: Path, tuner_pkl: bytes, signed: bool) -> Path:
    """An experiment directory holding only a tuner.pkl (signed with the test's key or not):
    enough for `--resume` to reach its checks of Ray's state, which come before Ray starts."""
    experiment = results / "small"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(tuner_pkl)
    if signed:
        signatures = Signatures.load(experiment, load_key())
        signatures.sign("tuner.pkl")
        signatures.save()
    return experiment


def test_unsigned_state_is_refused_and_never_loaded(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    experiment = _fake_experiment(tmp_path / "runs", _crafted(marker), signed=False)
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path / "runs"), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--resume: {experiment / 'tuner.pkl'} is not signed by you" in err
    assert "`gansearch report`, `ui`, `sample` and `curves` read no pickles" in err
    assert "--resume --trust-state" in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"\x00garbage, not a pickle\n" * 3, "is not a pickle"),
        (pickle.dumps({"state": list(range(100))})[:40], "is cut short (40 bytes)"),
        (b"", "is empty"),
    ],
)
def test_damaged_state_is_named_with_its_cause(tmp_path, capsys, content, cause):
    experiment = _fake_experiment(tmp_path / "runs", content, signed=True)
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path / "runs"), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--resume: {experiment / 'tuner.pkl'} {cause}" in err, err
    assert "Ray cannot restore the search from it" in err and "Traceback" not in err


def test_trust_state_without_resume_is_refused(tmp_path, capsys):
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--trust-state"]
    assert main(args) == 2
    assert "--trust-state goes with --resume" in capsys.readouterr().err
    assert not (tmp_path / "small").exists()


def test_an_empty_name_is_refused(tmp_path, capsys):
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--name", ""]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--name '': an experiment needs a name; leave --name out" in err
    assert not (tmp_path / "small").exists()


@pytest.mark.slow
def test_tampered_or_copied_state_is_refused_until_trusted(tmp_path, monkeypatch):
    """A search's own pickles altered after it ran, and the search copied elsewhere (by this
    user and by another, and altered there): resume is refused, naming the file, and no
    crafted pickle runs; --trust-state signs the copy and the resume goes ahead."""
    runs = tmp_path / "runs"
    common = ["run", "--space", str(SMALL), "--report-top", "0", "--progress-interval", "100"]

    def gansearch(results: Path, *more: str) -> subprocess.CompletedProcess:
        command = _cli(*common, "--results-dir", str(results), *more)
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)

    first = gansearch(runs, "--trials", "2", "--max-epochs", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    marker = tmp_path / "payload-ran"
    tuner_pkl = runs / "small" / "tuner.pkl"
    original = tuner_pkl.read_bytes()
    tuner_pkl.write_bytes(_crafted(marker))
    tampered = gansearch(runs, "--resume")
    assert tampered.returncode == 2, tampered.stderr[-3000:]
    assert f"{tuner_pkl} changed since gansearch wrote it" in tampered.stderr
    assert "Traceback" not in tampered.stderr and not marker.exists()
    tuner_pkl.write_bytes(original)

    copy = tmp_path / "copied"
    shutil.copytree(runs, copy)
    planted = copy / "small" / "searcher-state-9999.pkl"  # the newest: the one Ray would load
    planted.write_bytes(_crafted(marker))
    altered = gansearch(copy, "--resume")
    assert altered.returncode == 2, altered.stderr[-3000:]
    assert f"{planted} is not signed by you" in altered.stderr and not marker.exists()
    planted.unlink()

    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "another-users-key"))
    theirs = gansearch(copy, "--resume")
    assert theirs.returncode == 2, theirs.stderr[-3000:]
    named = rf"--resume: {re.escape(str(copy))}/small/\S+ is not signed by you"
    assert re.search(named, theirs.stderr), theirs.stderr[-3000:]
    trusted = gansearch(copy, "--resume", "--trust-state")
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert re.search(r"--trust-state: signed [4-9] files of Ray's state", trusted.stderr)
    assert "best 2 of 2 trials" in trusted.stdout
    signatures = Signatures.load(copy / "small", load_key())
    state = ["tuner.pkl", *(p.name for p in (copy / "small").glob("*state-*"))]
    assert all(signatures.problem(name) is None for name in state), state
    assert (copy / "small" / SIGNATURES_FILE).exists() and not marker.exists()
