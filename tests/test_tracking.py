"""MLflow tracking and the Table 1 report, end to end on one small search (interrupted, resumed).

One module-scoped search serves most assertions: it is interrupted (Ctrl-C) after two trials,
resumed with `--resume`, and reports its best three configurations at the end.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from gansearch.cli import main
from gansearch.data import load_dataset
from gansearch.parzen import ParzenConfig, evaluate
from gansearch.quality import load_scorer
from gansearch.report import PAPER, PAPER_TABLE, RETRAINED
from gansearch.tracking import EPOCH_METRICS, default_tracking_uri, param_name
from gansearch.trainer import Trainer, best_epoch

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "tests" / "fixtures" / "small_space.yaml"
TRIALS = 5


class _CtrlCAfter(io.StringIO):
    """A stderr that presses Ctrl-C (SIGINT to this process) once `n` trials have ended."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.ended, self.sent = n, 0, False

    def write(self, text: str) -> int:
        self.ended += len(re.findall(r"\] trial \w+ (?:finished|stopped early) after", text))
        if self.ended >= self.n and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return super().write(text)


@dataclass
class Search:
    root: Path
    args: list[str]
    first_code: int
    first_err: str
    runs_before: dict[str, str]  # trial id -> run id after the interruption
    code: int
    out: str
    err: str

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(default_tracking_uri(self.root))

    @property
    def experiment_id(self) -> str:
        return self.client.get_experiment_by_name("small").experiment_id

    def runs(self, role: str) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`gansearch.role` = '{role}'"
        )

    @property
    def results(self) -> pd.DataFrame:
        return pd.read_parquet(self.root / "small" / "results.parquet")


def _trial_runs(client: MlflowClient, root: Path) -> dict[str, str]:
    experiment = client.get_experiment_by_name("small")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`gansearch.role` = 'trial'"
    )
    return {r.data.tags["gansearch.trial_id"]: r.info.run_id for r in runs}


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Search:
    root = tmp_path_factory.mktemp("tracked")
    # A larger init range than the fixture's, so that the trials' generators differ visibly.
    space = root / "small.yaml"
    space.write_text(
        SMALL.read_text().replace("units: [64, 64]}", "units: [64, 64], init_range: 0.1}")
    )
    args = ["run", "--space", str(space), "--results-dir", str(root), "--trials", str(TRIALS)]
    args += ["--concurrency", "2", "--progress-interval", "100"]
    err = _CtrlCAfter(2)
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        first_code = main(args)
    runs_before = _trial_runs(MlflowClient(default_tracking_uri(root)), root)
    out, err2 = io.StringIO(), io.StringIO()
    with redirect_stderr(err2), redirect_stdout(out):
        code = main([*args, "--resume"])
    return Search(root, args, first_code, err.getvalue(), runs_before, code, out.getvalue(),
                  err2.getvalue())  # fmt: skip


def test_interrupted_search_resumes_into_the_same_runs(search):
    assert search.first_code == 130, search.first_err
    assert search.code == 0, search.err
    assert len(search.runs_before) >= 2
    parents = search.runs("search")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = search.runs("trial")
    by_trial = {r.data.tags["gansearch.trial_id"]: r for r in children}
    assert len(children) == TRIALS == len(by_trial) == len(search.results)
    assert set(by_trial) == set(search.results["trial_id"])
    for trial_id, run_id in search.runs_before.items():  # resumed, not duplicated
        assert by_trial[trial_id].info.run_id == run_id
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        history = search.client.get_metric_history(run.info.run_id, "valid_ll")
        steps = [m.step for m in history]
        epochs = int(search.results.set_index("trial_id").loc[run.info.run_name, "epochs"])
        assert sorted(steps) == list(range(1, epochs + 1)), "an epoch logged twice or lost"


def test_child_runs_hold_params_epoch_metrics_and_tune_status(search):
    results = search.results.set_index("trial_id")
    for run in search.runs("trial"):
        row = results.loc[run.data.tags["gansearch.trial_id"]]
        assert run.data.tags["gansearch.status"] == row["status"]
        assert run.info.status == "FINISHED"
        assert float(run.data.params[param_name("optim.lr_d")]) == pytest.approx(row["optim.lr_d"])
        assert run.data.params["optim.k"] == str(row["optim.k"])
        assert run.data.params["generator.units"] == str(row["generator.units"])
        quality = {"fid", "classes_covered", "class_kl", "confidence"}  # logged only if asked
        assert set(EPOCH_METRICS) - {"valid_se"} - quality <= set(run.data.metrics)
        assert run.data.metrics["valid_ll"] == pytest.approx(
            search.client.get_metric_history(run.info.run_id, "valid_ll")[-1].value
        )
    assert {"finished", "stopped early"} >= set(results["status"])


def test_parent_run_has_table1_with_our_rows_beside_the_papers(search, tmp_path):
    parent = search.runs("search")[0]
    names = {a.path for a in search.client.list_artifacts(parent.info.run_id, "table1")}
    assert names == {"table1/table1.md", "table1/table1.csv", "table1/table1.parquet"}
    local = search.client.download_artifacts(parent.info.run_id, "table1", str(tmp_path))
    table = pd.read_parquet(Path(local) / "table1.parquet")
    csv = pd.read_csv(Path(local) / "table1.csv")
    assert len(csv) == len(table)
    paper = table[table["source"] == PAPER]
    assert len(paper) == 8
    for model, cells in PAPER_TABLE.items():
        for dataset, (mean, se) in cells.items():
            row = paper[(paper["model"] == model) & (paper["dataset"] == dataset)]
            assert row[["test_ll", "se"]].values.tolist() == [[mean, se]]
    ours = table[table["source"] == "gansearch"]
    best3 = search.results.sort_values("valid_ll", ascending=False)["trial_id"].head(3)
    assert ours["trial_id"].tolist() == best3.tolist()
    assert (ours["dataset"] == "digits").all() and (ours["n_samples"] == 10_000).all()
    assert ours["fid"].notna().all() and (ours["n_classes"] == 10).all()
    # The reference rows, at the default sizes capped for digits' 1,197 training images.
    refs = table[table["source"] == "reference"].set_index("kind")
    assert refs["n_samples"].to_dict() == {"real": 1197, "kmeans": 239}
    assert refs.loc["real", "classes_covered"] == 10 and refs["fid"].notna().all()
    metrics = search.client.get_run(parent.info.run_id).data.metrics
    assert metrics["reference_real_test_mean"] == refs.loc["real", "test_ll"]
    assert metrics["reference_kmeans_fid"] == pytest.approx(refs.loc["kmeans", "fid"])
    markdown = (Path(local) / "table1.md").read_text()
    real = refs.loc["real"]
    assert f"| Reference: {real['model']} |  |  | {real['test_ll']:.2f} ± {real['se']:.2f} |" in (
        markdown
    )
    assert f"far above their {real['test_ll']:.2f} nats means blur" in markdown
    for text in ("| Adversarial nets | 225 ± 2 | 2057 ± 26 |", "| DBN | 138 ± 2 | 1909 ± 66 |"):
        assert text in markdown
    for trial_id, value in zip(ours["trial_id"], ours["test_ll"], strict=True):
        assert f"trial {trial_id}" in markdown and f"{value:.2f} ±" in markdown
    assert "report 3/3: trial" in search.err  # a progress line per configuration
    assert "| Adversarial nets | 225 ± 2 |" in search.out


def test_reported_test_metrics_match_a_direct_parzen_evaluation(search):
    table = pd.read_parquet(search.root / "small" / "report" / "table1.parquet")
    ours = table[table["source"] == "gansearch"]
    dataset = load_dataset("digits")
    scorer = load_scorer(dataset, train=False)  # the report trained it into the session cache
    values = set()
    results = search.results.set_index("trial_id")
    for row in ours.to_dict("records"):
        run = search.client.get_run(row["run_id"])
        trainer = Trainer.from_checkpoint(row["checkpoint"], dataset)
        # The evaluated checkpoint is the trial's best validation epoch, which the table names.
        trial = results.loc[row["trial_id"]]
        assert Path(row["checkpoint"]).parent == Path(trial["best_checkpoint"])
        assert trainer.epoch == row["epochs"] == trial["best_epoch"]
        assert row["trained_epochs"] == trial["epochs"]
        e = trainer.config.eval
        samples = trainer.sample(
            e.final_samples, rng=torch.Generator().manual_seed(int(row["seed"]))
        )
        config = ParzenConfig(sigmas=e.sigmas, n_valid=e.final_n_valid, precision=e.precision)
        direct = evaluate(samples, dataset.valid, dataset.test, config=config)
        metrics = run.data.metrics
        assert metrics["test_ll"] == pytest.approx(direct.test_mean, rel=1e-9)
        assert metrics["test_ll_se"] == pytest.approx(direct.test_se, rel=1e-9)
        assert metrics["test_sigma"] == direct.sigma
        fine_config = ParzenConfig(sigmas=e.fine_sigmas, n_valid=e.final_n_valid)
        fine = evaluate(samples, dataset.valid, dataset.test, config=fine_config)
        assert metrics["test_ll_fine"] == pytest.approx(fine.test_mean, rel=1e-9)
        assert metrics["test_sigma_fine"] == row["fine_sigma"] == fine.sigma
        assert f"fine sigma grid: {fine.test_mean:.2f}" in row["note"]
        assert row["test_ll"] == metrics["test_ll"]
        quality = scorer.score(samples)
        assert metrics["test_fid"] == pytest.approx(quality.fid, rel=1e-9) == row["fid"]
        assert metrics["test_classes_covered"] == quality.classes_covered
        assert metrics["test_class_kl"] == pytest.approx(quality.class_kl, abs=1e-12)
        assert metrics["test_confidence"] == pytest.approx(quality.confidence, rel=1e-9)
        values.add(round(direct.test_mean, 6))
        artifacts = {a.path for a in search.client.list_artifacts(row["run_id"], "report")}
        expected = {"samples.png", "interpolations.png", "learning_curves.png", "generator.pt"}
        assert {f"report/{name}" for name in [*expected, "search_space.yaml"]} == artifacts
    assert len(values) > 1, "every configuration scored the same: the check would prove little"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_server_is_reported_before_trials(tmp_path, capsys):
    uri = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--tracking-uri", uri]
    assert main(args) == 2
    assert time.monotonic() - started < 15  # no Ray started, no retries for minutes
    err = capsys.readouterr().err
    assert f"cannot reach the MLflow tracking server at {uri}" in err and "Traceback" not in err
    assert not (tmp_path / "small").exists()


def test_report_refuses_unknown_experiments_and_unreachable_servers(search, capsys):
    assert main(["report", "--results-dir", str(search.root), "--experiment", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--experiment nope: no finished search" in err and "searches there: small" in err
    uri = f"http://127.0.0.1:{_closed_port()}"
    assert main(["report", "--results-dir", str(search.root), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the MLflow tracking server" in err and "Traceback" not in err


def test_report_on_demand_retrains_stopped_trials_and_marks_them(search, capsys):
    stopped = search.results[search.results["status"] == "stopped early"]
    assert len(stopped) >= 1, "ASHA stopped no trial: nothing to retrain"
    args = ["report", "--results-dir", str(search.root), "--top", str(TRIALS), "--retrain"]
    assert main([*args, "--seed", "7", "--no-references"]) == 0
    out, err = capsys.readouterr()
    assert err.count("report ") >= TRIALS and "retraining from epoch" in err
    table = pd.read_parquet(search.root / "small" / "report" / "table1.parquet")
    assert "reference" not in set(table["source"]) and "Reference:" not in out
    ours = table[table["source"] == "gansearch"].set_index("trial_id")
    assert len(ours) == TRIALS and (ours["trained_epochs"] == 3).all() and (ours["seed"] == 7).all()
    digits = load_dataset("digits")
    for trial_id, row in ours[ours["retrained"]].iterrows():  # best epoch of the whole run
        full = Trainer.from_checkpoint(
            search.root / "small" / "report" / trial_id / RETRAINED, digits
        )
        assert full.epoch == 3 and row["epochs"] == best_epoch(full.history).epoch
        assert Trainer.from_checkpoint(row["checkpoint"], digits).epoch == row["epochs"]
    assert set(ours.index[ours["retrained"]]) == set(stopped["trial_id"])
    for trial_id in stopped["trial_id"]:
        assert "retrained to 3" in ours.loc[trial_id, "note"]
        run = search.client.get_run(ours.loc[trial_id, "run_id"])
        assert run.data.tags["gansearch.retrained"] == "true"
        assert run.data.tags["gansearch.status"] == "stopped early"  # the search's outcome stays
    assert "retrained to 3" in out
    # Still one run per trial, and one parent.
    assert len(search.runs("trial")) == TRIALS and len(search.runs("search")) == 1
