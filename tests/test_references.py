"""Reference rows of the calibrated Table 1 (gansearch.references) and how Table 1 shows them.

Everything runs on the bundled digits with small sizes (300 real images, 50 clusters): well under
a second once the session's digits classifier exists.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from gansearch import references
from gansearch.cli import main
from gansearch.data import load_dataset
from gansearch.parzen import ParzenConfig, evaluate
from gansearch.references import ReferenceRow, reference_rows, reference_sizes
from gansearch.report import ReportRow, table1, table1_markdown

N_REAL, N_CLUSTERS = 300, 50


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("references-cache")


@pytest.fixture(scope="module")
def rows(digits, digits_scorer, cache):
    return reference_rows(
        digits, digits_scorer, n_samples=N_REAL, n_clusters=N_CLUSTERS, cache=cache
    )


def test_the_real_row_scores_the_first_training_images(rows, digits, digits_scorer):
    real = rows[0]
    assert (real.kind, real.dataset, real.n) == ("real", "digits", N_REAL)
    parzen = evaluate(digits.train[:N_REAL], digits.valid, digits.test, ParzenConfig())
    assert (real.test_mean, real.test_se, real.sigma) == (
        parzen.test_mean,
        parzen.test_se,
        parzen.sigma,
    )
    assert real.valid_mean == parzen.valid_mean
    quality = digits_scorer.score(digits.train[:N_REAL])
    assert real.fid == pytest.approx(quality.fid) and real.confidence == quality.confidence
    assert (real.classes_covered, real.n_classes) == (10, 10) and real.class_kl < 0.01


def test_the_kmeans_row_scores_clipped_scikit_learn_centroids(rows, digits, digits_scorer):
    from sklearn.cluster import KMeans

    kmeans = rows[1]
    assert (kmeans.kind, kmeans.n) == ("kmeans", N_CLUSTERS)
    fit = KMeans(N_CLUSTERS, init="random", n_init=1, max_iter=30, random_state=0)
    centroids = np.clip(fit.fit(np.array(digits.train)).cluster_centers_, 0, 1)
    parzen = evaluate(centroids.astype(np.float32), digits.valid, digits.test, ParzenConfig())
    assert kmeans.test_mean == pytest.approx(parzen.test_mean, abs=1e-6)
    assert kmeans.fid == pytest.approx(digits_scorer.score(centroids.astype(np.float32)).fid)
    assert f"{fit.n_iter_} iterations" in kmeans.note and "clipped to [0, 1]" in kmeans.note


def test_parzen_rewards_the_blurry_centroids_over_real_images(rows):
    real, kmeans = rows
    # The point of the reference: averages of training images beat real ones under Parzen.
    assert kmeans.test_mean > real.test_mean
    assert kmeans.confidence <= real.confidence and kmeans.class_kl > real.class_kl


def test_a_second_call_reads_the_cache(rows, digits, digits_scorer, cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("computed again although cached")

    monkeypatch.setattr(references, "evaluate", refuse)
    monkeypatch.setattr(references, "kmeans_centroids", refuse)
    said: list[str] = []
    again = reference_rows(
        digits, digits_scorer, n_samples=N_REAL, n_clusters=N_CLUSTERS, cache=cache, say=said.append
    )
    assert again == rows and any("cached in" in s for s in said)
    path = cache / "references" / said[-1].rsplit("cached in ", 1)[1]
    state = json.loads(path.read_text())
    assert state["inputs"]["classifier"]["fingerprint"] == digits_scorer.fingerprint
    assert state["inputs"]["kmeans"]["n_clusters"] == N_CLUSTERS
    assert list((cache / "references").glob("digits-kmeans-*.npz"))  # the centroids, beside


def test_other_sizes_and_a_changed_classifier_get_new_rows(rows, digits, digits_scorer, cache):
    said: list[str] = []
    more = reference_rows(
        digits, digits_scorer, n_samples=N_REAL, n_clusters=60, cache=cache, say=said.append
    )
    assert more[1].n == 60 and (more[0].test_mean, more[0].fid) == (rows[0].test_mean, rows[0].fid)
    assert any("k-means (60 clusters" in s for s in said)  # fitted, not read
    # A changed classifier re-scores, but reuses the k-means fit.
    other = replace(digits_scorer, model=_perturbed(digits_scorer.model))
    said.clear()
    rescored = reference_rows(
        digits, other, n_samples=N_REAL, n_clusters=N_CLUSTERS, cache=cache, say=said.append
    )
    assert rescored[0].test_mean == rows[0].test_mean and rescored[0].fid != rows[0].fid
    assert any("centroids cached in" in s for s in said)


def _perturbed(model):
    import copy

    import torch

    model = copy.deepcopy(model)
    with torch.no_grad():
        model.head.bias.add_(0.5)
        model.penultimate[0].bias.add_(0.1)
    return model


def test_a_corrupt_cache_file_is_recomputed_with_a_message(rows, digits, digits_scorer, tmp_path):
    def compute(say=None):
        return reference_rows(
            digits, digits_scorer, n_samples=N_REAL, n_clusters=N_CLUSTERS, cache=tmp_path, say=say
        )

    compute()
    [path] = (tmp_path / "references").glob("digits-*.json")
    path.write_text("{ not json")
    said: list[str] = []
    again = compute(said.append)
    assert again[0].test_mean == rows[0].test_mean and again[1].test_mean == rows[1].test_mean
    assert any("cannot read cached reference rows" in s for s in said)
    assert json.loads(path.read_text())["rows"][0]["kind"] == "real"


def test_sizes_are_capped_for_small_data_sets():
    assert reference_sizes(50_000, 10_000, 10_000) == (10_000, 10_000)
    assert reference_sizes(1197, 10_000, 10_000) == (1197, 239)
    assert reference_sizes(1197, 300, 50) == (300, 50)
    with pytest.raises(references.UsageError, match="at least 2"):
        reference_sizes(1197, 1, 50)


def test_data_without_labels_get_parzen_only_rows(digits, tmp_path):
    unlabelled = replace(digits, name="tfd", train_labels=None, test_labels=None)
    rows = reference_rows(unlabelled, None, n_samples=100, n_clusters=20, cache=tmp_path)
    assert [r.kind for r in rows] == ["real", "kmeans"] and [r.n for r in rows] == [100, 20]
    assert all(r.fid is None and r.classes_covered is None for r in rows)
    markdown = table1_markdown([_report_row("tfd")], rows)
    assert "| Reference: Real data: 100 training images |  | " in markdown
    assert markdown.count("n/a | n/a | n/a") == 3 and "Quality columns n/a" in markdown


def test_references_command_prints_both_rows(rows, capsys):
    args = ["quality", "--references", "--dataset", "digits"]
    assert main([*args, "--n-samples", str(N_REAL), "--n-clusters", str(N_CLUSTERS)]) == 0
    out = capsys.readouterr().out
    for row in rows:
        assert f"| {row.label} | {row.test_mean:.2f} ± {row.test_se:.2f} |" in out
        assert f"| {row.classes_covered}/{row.n_classes} ({row.class_kl:.3f}) |" in out


# --------------------------------------------------------------------------- Table 1


def _report_row(dataset: str, **quality) -> ReportRow:
    return ReportRow(rank=1, trial_id="t1", run_id="r", dataset=dataset, fold=None,
                     status="finished", search_valid_ll=1.0, epochs=3, max_epochs=3,
                     trained_epochs=3, retrained=False, sigma=0.2, valid_mean=1.5, valid_se=0.1,
                     test_mean=12.5, test_se=0.5, n_samples=1000, n_valid=300, n_test=300, seed=0,
                     checkpoint="c", seconds=1.0, note="n", **quality)  # fmt: skip


def test_table1_shows_references_beside_the_paper_and_ours(rows):
    ours = _report_row("digits", fid=40.0, classes_covered=9, n_classes=10, class_kl=0.2,
                       confidence=0.9)  # fmt: skip
    markdown = table1_markdown([ours], rows)
    real, kmeans = rows
    assert "| Adversarial nets | 225 ± 2 | 2057 ± 26 |  |  |  |  | the paper |" in markdown
    assert f"| Reference: {real.label} |  |  | {real.test_mean:.2f} ± {real.test_se:.2f} | " in (
        markdown
    )
    assert "| gansearch #1: trial t1 |  |  | 12.50 ± 0.50 | 40.00 | 9/10 (0.200) | 0.900 |" in (
        markdown
    )
    # The note under the table quotes the measured numbers.
    assert f"far above their {real.test_mean:.2f} nats means blur" in markdown
    assert f"Parzen scores them at {kmeans.test_mean:.2f}, above real data" in markdown
    assert f"FID gives them {kmeans.fid:.2f} (real data {real.fid:.2f})" in markdown
    table = table1([ours], rows)
    assert table["source"].value_counts().to_dict() == {
        "Goodfellow et al. (2014), Table 1": 8,
        "reference": 2,
        "gansearch": 1,
    }
    refs = table[table["source"] == "reference"].set_index("kind")
    assert refs.loc["kmeans", "n_samples"] == N_CLUSTERS
    assert refs.loc["real", "fid"] == real.fid and refs.loc["real", "test_ll"] == real.test_mean
    assert table.loc[table["source"] == "gansearch", "fid"].tolist() == [40.0]


def test_reference_rows_round_trip_through_json(rows):
    from dataclasses import asdict

    assert [ReferenceRow(**json.loads(json.dumps(asdict(r)))) for r in rows] == rows
