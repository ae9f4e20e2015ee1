"""One configuration's report (gansearch.report.configuration): test numbers that equal a direct
Parzen evaluation of the logged checkpoint, with its files on the trial's MLflow run, and the
provenance of the evaluated epoch. The search is conftest's `tracked_search`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from gansearch.data import load_dataset
from gansearch.parzen import ParzenConfig, evaluate
from gansearch.quality import load_scorer
from gansearch.report import Provenance
from gansearch.trainer import Trainer

pytestmark = pytest.mark.slow


def test_reported_test_metrics_match_a_direct_parzen_evaluation(tracked_search):
    table = pd.read_parquet(tracked_search.root / "small" / "report" / "table1.parquet")
    ours = table[table["source"] == "gansearch"]
    dataset = load_dataset("digits")
    scorer = load_scorer(dataset, train=False)  # the report trained it into the session cache
    values = set()
    results = tracked_search.results.set_index("trial_id")
    for row in ours.to_dict("records"):
        run = tracked_search.client.get_run(row["run_id"])
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
        artifacts = {a.path for a in tracked_search.client.list_artifacts(row["run_id"], "report")}
        expected = {"samples.png", "interpolations.png", "learning_curves.png", "generator.pt"}
        assert {f"report/{name}" for name in [*expected, "search_space.yaml"]} == artifacts
    assert len(values) > 1, "every configuration scored the same: the check would prove little"


@pytest.mark.parametrize(
    ("provenance", "expected"),
    [
        (Provenance(30, 30, 30, 30, False), "epoch 30 (the last) of 30"),
        (
            Provenance(12, 30, 30, 30, False),
            "epoch 12 (best validation LL) of 30 trained, 30 max",
        ),
        (
            Provenance(25, 30, 10, 30, True),
            "epoch 25 (best validation LL) of 30 trained, 30 max; "
            "stopped early at 10, retrained to 30",
        ),
        (
            Provenance(10, 10, 10, 30, False),
            "epoch 10 (the last) of 30; stopped early, not retrained",
        ),
    ],
)
def test_provenance_says_which_epoch_of_which_run_was_evaluated(provenance, expected):
    assert provenance.describe() == expected
