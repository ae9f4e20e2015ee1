"""Population-based training (gansearch.search.pbt).

The end-to-end test starts a local Ray twice (a run interrupted with Ctrl-C, then --resume) and
trains a population of four digits GANs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from gansearch.experiment import (
    CHECKPOINT_FILE,
    read_reports,
    read_results,
    read_trial_log,
)
from gansearch.histories import stored_sessions
from gansearch.search.optuna_search import ReusingOptunaSearch
from gansearch.search.pbt import clip_to_ranges, first_population, mutation_values, tune_domain
from gansearch.space import load_space, make_sampler

FIXTURES = Path(__file__).parents[1] / "fixtures"
PBT = FIXTURES / "pbt_space.yaml"
DIVERGE = FIXTURES / "pbt_diverge.yaml"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gansearch.cli", *args]


# ----------------------------------------------------------------------------- pbt's search space


def test_pbt_mutations_stay_in_the_searched_ranges() -> None:
    space = load_space(PBT)
    params = {p.key: p for p in space.params}
    assert mutation_values(params["optim.k"]) == [1, 2, 3]
    assert mutation_values(params["generator.units"]) == ["[64, 64]", "[128, 128]"]
    assert tune_domain(params["optim.lr_d"]).lower == 0.01
    config = {"optim.lr_d": 0.6, "optim.lr_g": 0.005, "discriminator.keep_probs[0]": 0.9}
    ranges = {"optim.lr_d": (0.01, 0.5), "optim.lr_g": (0.01, 0.5)}
    assert clip_to_ranges(config, ranges) == {
        "optim.lr_d": 0.5,
        "optim.lr_g": 0.01,
        "discriminator.keep_probs[0]": 0.9,
    }


def test_pbt_population_starts_from_the_random_searchs_first_draws() -> None:
    space = load_space(PBT)
    sampler = make_sampler(space.search)
    searcher = ReusingOptunaSearch(
        space=space.optuna_space(), metric="valid_ll", mode="max", sampler=sampler
    )
    random_search = [searcher.suggest(f"t{i}") for i in range(space.budget.trials)]
    assert first_population(space) == random_search
    assert len({json.dumps(c, sort_keys=True) for c in random_search}) == space.budget.trials


def test_pbt_population_starts_with_the_given_configurations() -> None:
    space = load_space(DIVERGE)
    (given,) = space.search.start_with
    population = first_population(space)
    assert population[0] == given
    assert len(population) == space.budget.trials
    # The rest are the random search's own first draws: giving configurations shifts nothing.
    without = dataclasses.replace(space, search=dataclasses.replace(space.search, start_with=()))
    assert population[1:] == first_population(without)[: space.budget.trials - 1]


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_pbt_search_copies_perturbs_tracks_lineage_and_resumes(tmp_path) -> None:
    args = ["run", "--space", str(PBT), "--results-dir", str(tmp_path), "--report-top", "0"]
    driver = subprocess.Popen(
        _cli(*args, "--progress-interval", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:  # interrupt once the population has trained 12 of its 4 x 8 epochs
        for line in driver.stderr:
            match = re.search(r"trial-epochs (\d+)/48", line)
            if match and int(match[1]) >= 12:
                break
        driver.send_signal(signal.SIGINT)
        _, rest = driver.communicate(timeout=120)
        interrupted_at = time.time()
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, rest
    experiment = tmp_path / "pbt"
    spent_before = sum(stored_sessions(experiment).values())
    assert 12 <= spent_before < 32

    resumed = subprocess.run(
        _cli(*args, "--resume", "--progress-interval", "100"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr

    # The resume went on from checkpoints: every session it started began past epoch 0. A
    # resumed population can be out of step, so a copy may skip epochs or go back some, and the
    # evaluation a trial made after Tune's last snapshot is trained again: the total stays near
    # 4 x 8 epochs, inside the budget.
    reports = pd.concat(read_reports(experiment).values())
    after = reports[reports["reported_at"] > interrupted_at]
    assert len(after) and (after["epoch"] > after["session_epochs"]).all()
    assert spent_before < sum(stored_sessions(experiment).values()) <= 48
    table = pd.read_parquet(experiment / "results.parquet")
    assert len(table) == 4 and table["trial_id"].is_unique
    outcome = (table[["trial_id", "status", "epochs"]].to_string(), resumed.stderr[-4000:])
    # Known Ray Tune race (../shared/STACK-NOTES.md): now and then, the trial whose session Ray
    # is stopping at the moment of Ctrl-C is recorded as complete by Tune, so the resume does
    # not continue it. Tolerated for that one trial only, and only if it is exactly that case:
    # it ended before the interruption was handled and trained nothing after it.
    cut = table[table["status"] != "finished"]
    assert len(cut) <= 1, outcome
    for trial_id in cut["trial_id"]:
        mine = reports[reports["trial_id"] == trial_id]
        assert (mine["reported_at"] < interrupted_at).all(), outcome
        assert read_trial_log(experiment)[trial_id]["status"] == "stopped early", outcome
    ids = set(table["trial_id"])
    finished = table[table["status"] == "finished"]
    assert (finished["epochs"] == 8).all() and len(finished) >= 3, outcome
    assert table["optim.lr_d"].between(0.01, 0.5).all()
    assert table["discriminator.keep_probs[0]"].between(0.6, 1.0).all()
    assert table["optim.k"].isin([1, 2, 3]).all()
    copied = table[table["lineage"] != ""]
    assert len(copied) >= 1, "no trial copied another"
    for lineage in copied["lineage"]:
        entries = re.findall(r"epoch (\d+): copied trial ([\w-]+)", lineage)
        assert entries and all(trial in ids for _, trial in entries)
        assert all(2 <= int(epoch) < 8 for epoch, _ in entries)  # from the burn-in, never last
    assert "copied trial" in resumed.stdout  # the leaderboard shows lineage too

    # MLflow: each trial's schedule (hp.* at every epoch) and the lineage of those that copied.
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("pbt").experiment_id
    runs = client.search_runs([experiment_id], "tags.`gansearch.role` = 'trial'")
    assert len(runs) == 4
    by_trial = {r.data.tags["gansearch.trial_id"]: r for r in runs}
    for row in table.to_dict("records"):
        run = by_trial[row["trial_id"]]
        history = client.get_metric_history(run.info.run_id, "hp.optim.lr_d")
        reported = reports.loc[reports["trial_id"] == row["trial_id"], "epoch"]
        assert {m.step for m in history} == set(reported.astype(int))  # every epoch it reported
        assert all(0.01 <= m.value <= 0.5 for m in history)
        final = max(history, key=lambda m: (m.step, m.timestamp))
        assert math.isclose(final.value, row["optim.lr_d"], rel_tol=1e-9)
        assert client.get_metric_history(run.info.run_id, "hp.discriminator.keep_probs.0")
        assert run.data.tags.get("gansearch.lineage", "") == row["lineage"]
    # A copy changes what a trial trains with: some trial's lr_d schedule is not constant.
    schedules = [
        {m.value for m in client.get_metric_history(r.info.run_id, "hp.optim.lr_d")} for r in runs
    ]
    assert any(len(values) > 1 for values in schedules)


@pytest.mark.slow
def test_a_diverged_member_is_replaced_by_a_copy_and_the_population_keeps_its_size(
    diverged_pbt_search: Path,
) -> None:
    experiment = diverged_pbt_search / "pbt-diverge"
    space = load_space(DIVERGE)
    stderr = (diverged_pbt_search / "stderr.txt").read_text()
    table = read_results(experiment)
    # The population keeps its size: every member trains all 8 epochs and none ends diverged.
    assert len(table) == 4 and (table["status"] == "finished").all(), table.to_string()
    assert (table["epochs"] == 8).all()
    reports = read_reports(experiment)
    (diverged,) = [t for t, r in reports.items() if (r["diverged"] == 1).any()]
    assert diverged.endswith("_00001")  # the member chaos made diverge, and only it
    assert re.search(rf"trial {diverged} diverged at epoch 3 .*copy of the best member", stderr)

    # Its next session goes on from another member's checkpoint, and the lineage says so.
    history = reports[diverged]
    at = history.index[history["diverged"] == 1][0]
    copy = history.loc[at + 1]
    donor, copied_epoch = copy["copied_from"], int(copy["copied_epoch"])
    assert donor in reports and donor != diverged
    row = table.set_index("trial_id").loc[diverged]
    assert re.match(
        rf"epoch {copied_epoch}: copied trial {donor} \(replacing its own state, diverged at "
        r"epoch 3\)",
        row["lineage"],
    ), row["lineage"]
    # It went on from the copy's epoch with the donor's state: its first report after the
    # divergence is the next evaluation, and its trainer's history up to the copy is the donor's.
    assert int(copy["epoch"]) == copied_epoch + int(copy["session_epochs"])
    states = [
        torch.load(path, weights_only=True)
        for path in sorted(Path(row["checkpoint"]).parent.glob(f"checkpoint_*/{CHECKPOINT_FILE}"))
    ]
    # The last checkpoint at that epoch: the member's own state may have had one there too.
    after_copy = [s for s in states if s["epoch"] == int(copy["epoch"])][-1]
    inherited = {
        m["epoch"]: m["valid_ll"] for m in after_copy["history"] if m["epoch"] <= copied_epoch
    }
    donor_reports = reports[donor].drop_duplicates("epoch").set_index("epoch")["valid_ll"]
    assert inherited == {e: donor_reports[e] for e in range(1, copied_epoch + 1)}

    # Nothing was trained twice: all sessions together trained the 4 x 8 epochs, plus the
    # diverged session's epochs past the checkpoint its copy went on from.
    lost = 3 - copied_epoch
    assert sum(stored_sessions(experiment).values()) == 4 * space.budget.max_epochs + lost
    assert "retrying" not in stderr  # no retry of the diverged state from its own checkpoint

    # MLflow: the replacement's run carries the same lineage.
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{diverged_pbt_search / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("pbt-diverge").experiment_id
    (run,) = client.search_runs([experiment_id], f"tags.`gansearch.trial_id` = '{diverged}'")
    assert run.data.tags["gansearch.lineage"] == row["lineage"]
    assert run.info.status == "FINISHED"
