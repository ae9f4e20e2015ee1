"""The Table 1 report of a finished search (gansearch.report.make): the paper's rows beside ours
and the reference rows, MLflow artifacts, clear refusals, retraining of stopped-early trials on
demand, a copied results directory, and which hyperparameters mattered. The search is conftest's
`tracked_search`; the retraining test rewrites its report, so the tests that read the report as
the search wrote it (test_configuration.py, collected before this file) run before it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gansearch.cli import main
from gansearch.data import load_dataset
from gansearch.report import PAPER, PAPER_TABLE, RETRAINED
from gansearch.trainer import Trainer, best_epoch
from tests.support.processes import free_port
from tests.support.tracked_search import TRIALS

pytestmark = pytest.mark.slow


def test_parent_run_has_table1_with_our_rows_beside_the_papers(tracked_search, tmp_path):
    parent = tracked_search.runs("search")[0]
    names = {a.path for a in tracked_search.client.list_artifacts(parent.info.run_id, "table1")}
    assert names == {"table1/table1.md", "table1/table1.csv", "table1/table1.parquet"}
    local = tracked_search.client.download_artifacts(parent.info.run_id, "table1", str(tmp_path))
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
    best3 = tracked_search.results.sort_values("valid_ll", ascending=False)["trial_id"].head(3)
    assert ours["trial_id"].tolist() == best3.tolist()
    assert (ours["dataset"] == "digits").all() and (ours["n_samples"] == 10_000).all()
    assert ours["fid"].notna().all() and (ours["n_classes"] == 10).all()
    # The reference rows, at the default sizes capped for digits' 1,197 training images.
    refs = table[table["source"] == "reference"].set_index("kind")
    assert refs["n_samples"].to_dict() == {"real": 1197, "kmeans": 239}
    assert refs.loc["real", "classes_covered"] == 10 and refs["fid"].notna().all()
    metrics = tracked_search.client.get_run(parent.info.run_id).data.metrics
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
    assert "report 3/3: trial" in tracked_search.err  # a progress line per configuration
    first = ours[ours["rank"] == 1].iloc[0]
    assert metrics["best_test_ll"] == pytest.approx(first["test_ll"])
    tags = tracked_search.client.get_run(parent.info.run_id).data.tags
    assert tags["gansearch.best_test_trial"] == first["trial_id"]
    assert tags["gansearch.registered_model"].startswith("models:/small-generator/")
    assert "| Adversarial nets | 225 ± 2 |" in tracked_search.out


def test_report_refuses_unknown_experiments_and_unreachable_servers(tracked_search, capsys):
    assert main(["report", "--results-dir", str(tracked_search.root), "--experiment", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--experiment nope: no finished search" in err and "searches there: small" in err
    uri = f"http://127.0.0.1:{free_port()}"
    assert main(["report", "--results-dir", str(tracked_search.root), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the MLflow tracking server" in err and "Traceback" not in err


def test_report_on_demand_retrains_stopped_trials_and_marks_them(tracked_search, capsys):
    stopped = tracked_search.results[tracked_search.results["status"] == "stopped early"]
    assert len(stopped) >= 1, "ASHA stopped no trial: nothing to retrain"
    args = ["report", "--results-dir", str(tracked_search.root), "--top", str(TRIALS), "--retrain"]
    assert main([*args, "--seed", "7", "--no-references"]) == 0
    out, err = capsys.readouterr()
    assert err.count("report ") >= TRIALS and "retraining from epoch" in err
    table = pd.read_parquet(tracked_search.root / "small" / "report" / "table1.parquet")
    assert "reference" not in set(table["source"]) and "Reference:" not in out
    ours = table[table["source"] == "gansearch"].set_index("trial_id")
    assert len(ours) == TRIALS and (ours["trained_epochs"] == 3).all() and (ours["seed"] == 7).all()
    digits = load_dataset("digits")
    for trial_id, row in ours[ours["retrained"]].iterrows():  # best epoch of the whole run
        full = Trainer.from_checkpoint(
            tracked_search.root / "small" / "report" / trial_id / RETRAINED, digits
        )
        assert full.epoch == 3 and row["epochs"] == best_epoch(full.history).epoch
        assert Trainer.from_checkpoint(row["checkpoint"], digits).epoch == row["epochs"]
    assert set(ours.index[ours["retrained"]]) == set(stopped["trial_id"])
    for trial_id in stopped["trial_id"]:
        assert "retrained to 3" in ours.loc[trial_id, "note"]
        run = tracked_search.client.get_run(ours.loc[trial_id, "run_id"])
        assert run.data.tags["gansearch.retrained"] == "true"
        assert run.data.tags["gansearch.status"] == "stopped early"  # the search's outcome stays
    assert "retrained to 3" in out
    # Still one run per trial, and one parent.
    assert len(tracked_search.runs("trial")) == TRIALS and len(tracked_search.runs("search")) == 1


# --------------------------------------------------------------------------- moved


def _copy(tracked_search, tmp_path: Path) -> Path:
    """A copy of the tracked search's results directory somewhere else."""
    import shutil

    copy = tmp_path / "copied"
    shutil.copytree(tracked_search.root, copy, symlinks=True)
    return copy


def test_a_copied_results_directory_is_scored_from_its_own_checkpoints(tracked_search, tmp_path):
    from mlflow import MlflowClient

    from gansearch.tracking import default_tracking_uri

    copy = _copy(tracked_search, tmp_path)
    args = ["report", "--results-dir", str(copy), "--top", "1", "--no-references"]
    assert main(args) == 0
    table = pd.read_parquet(copy / "small" / "report" / "table1.parquet")
    ours = table[table["source"] == "gansearch"]
    assert Path(ours["checkpoint"].iloc[0]).is_relative_to(copy)
    client = MlflowClient(default_tracking_uri(copy))
    experiment = client.get_experiment_by_name("small").experiment_id
    parents = client.search_runs([experiment], "tags.`gansearch.role` = 'search'")
    assert len(parents) == 1  # the copy found its search's run, not a new one
    trials = client.search_runs([experiment], "tags.`gansearch.role` = 'trial'")
    assert len(trials) == TRIALS


def test_report_logs_which_hyperparameters_mattered(tracked_search):
    parent = tracked_search.runs("search")[0]
    names = {a.path for a in tracked_search.client.list_artifacts(parent.info.run_id, "importance")}
    assert names == {f"importance/importance.{s}" for s in ("md", "csv", "png")}
    table = pd.read_csv(tracked_search.root / "small" / "report" / "importance.csv")
    searched = {"optim.lr_d", "optim.k", "generator.units"}
    assert set(table["param"]) == searched and set(table["evaluator"]) == {"fanova", "ped_anova"}
    note = (tracked_search.root / "small" / "report" / "importance.md").read_text()
    assert "Warning: only 5 trials for 3 parameters" in note


# --------------------------------------------------------------------------- damaged


class _Crafted:
    """Unpickles as open(path, "w"): a checkpoint that would run code if it were unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _renamed_copy(tracked_search, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the tracked search's results directory (its own MLflow store) in which the
    experiment is renamed `renamed` and has no report yet; returns the results directory and
    the experiment's."""
    import shutil

    copy = _copy(tracked_search, tmp_path)
    experiment_dir = (copy / "small").rename(copy / "renamed")
    if (experiment_dir / "report").exists():
        shutil.rmtree(experiment_dir / "report")
    return copy, experiment_dir


def _chosen(experiment_dir: Path, top: int) -> list[dict]:
    """The trials the report chooses, best first, with the checkpoint it evaluates."""
    from gansearch.experiment import read_results
    from gansearch.report import choose_trials
    from gansearch.space import stored_space

    chosen = choose_trials(read_results(experiment_dir), stored_space(experiment_dir), top)
    trials = chosen.to_dict("records")
    for trial in trials:
        best = trial.get("best_checkpoint")
        trial["evaluated"] = Path(best if isinstance(best, str) else trial["checkpoint"])
        trial["evaluated"] /= "trainer.pt"
    return trials


def test_a_damaged_checkpoint_skips_its_configuration_and_the_rest_are_reported(
    tracked_search, tmp_path, capsys
):
    import torch
    from mlflow import MlflowClient

    from gansearch.tracking import default_tracking_uri

    copy, experiment_dir = _renamed_copy(tracked_search, tmp_path)
    first, second, third = _chosen(experiment_dir, 3)
    first["evaluated"].write_bytes(b"\x00garbage, not a checkpoint\xff" * 40)
    marker = tmp_path / "crafted-code-ran"
    torch.save({"config": _Crafted(marker)}, second["evaluated"])
    args = ["report", "--results-dir", str(copy), "--experiment", "renamed", "--top", "3"]
    assert main([*args, "--no-references"]) == 0
    out, err = capsys.readouterr()
    assert not marker.exists(), "unpickling the crafted checkpoint ran its code"
    assert "Traceback" not in err
    reason = "cannot read checkpoint: torch.load(weights_only=True) refused it"
    for rank, trial in ((1, first), (2, second)):
        line = f"#{rank}, trial {trial['trial_id']}: {trial['evaluated']}: {reason}"
        assert line in out  # the printed Table 1's Markdown
        assert f"report {rank}/3: skipped trial {trial['trial_id']}: " in err
    assert "## Skipped configurations" in out
    report_dir = experiment_dir / "report"
    assert f"#1, trial {first['trial_id']}: " in (report_dir / "table1.md").read_text()
    table = pd.read_parquet(report_dir / "table1.parquet")
    ours = table[table["source"] == "gansearch"]
    assert ours[["rank", "trial_id"]].values.tolist() == [[3, third["trial_id"]]]
    assert not (report_dir / first["trial_id"]).exists()  # no empty folder for a skipped one
    # MLflow: the copy found its search's runs by the search id, under the search's own name.
    client = MlflowClient(default_tracking_uri(copy))
    assert client.get_experiment_by_name("renamed") is None
    experiment = client.get_experiment_by_name("small").experiment_id
    (parent,) = client.search_runs([experiment], "tags.`gansearch.role` = 'search'")
    skipped = parent.data.tags["gansearch.report_skipped"]
    assert f"#1, trial {first['trial_id']}: " in skipped
    assert f"#2, trial {second['trial_id']}: " in skipped
    assert parent.data.tags["gansearch.best_test_trial"] == third["trial_id"]


def test_a_report_that_can_evaluate_no_configuration_fails_naming_each(
    tracked_search, tmp_path, capsys
):
    copy, experiment_dir = _renamed_copy(tracked_search, tmp_path)
    chosen = _chosen(experiment_dir, 2)
    for trial in chosen:
        trial["evaluated"].write_bytes(b"truncated")
    args = ["report", "--results-dir", str(copy), "--experiment", "renamed", "--top", "2"]
    assert main([*args, "--no-references", "--no-register"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert "gansearch report: error: " in err
    assert "none of the 2 chosen configurations could be reported" in err
    for rank, trial in enumerate(chosen, start=1):
        assert f"#{rank}, trial {trial['trial_id']}: {trial['evaluated']}: cannot read" in err
    assert not (experiment_dir / "report" / "table1.md").exists()


def test_a_pbt_search_gets_no_importances_and_is_told_why(tmp_path: Path) -> None:
    from gansearch.report.configuration import ReportContext
    from gansearch.report.make import write_importances
    from gansearch.space import load_space

    space = load_space(Path(__file__).parents[2] / "search_spaces" / "mnist_pbt.yaml")
    said: list[str] = []
    # Four finished members with every searched value: enough for importances otherwise.
    results = pd.DataFrame(
        [
            {"trial_id": f"t_{i}", "status": "finished", "valid_ll": 190.0 + i}
            | {p.key: p.low if i % 2 else p.high for p in space.params}
            for i in range(4)
        ]
    )
    context = ReportContext(tmp_path, space, None, None, None, 0, False, said.append)  # type: ignore[arg-type]
    assert write_importances(context, results) == ([], "")
    assert any("population-based training" in s and "gansearch schedule" in s for s in said)
    assert not (tmp_path / "report").exists()
