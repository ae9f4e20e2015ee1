"""The trial (gansearch.search.trial), run in a stand-in for Ray Tune's session: a checkpoint
that cannot be read fails the trial once with the reason, a session that starts from a finished
checkpoint still reports its state, a trial that runs out of GPU memory names the packing to
lower, and trials get an absolute data directory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from gansearch.data import load_dataset
from gansearch.experiment import CHECKPOINT_FILE
from gansearch.outcomes import trial_outcome
from gansearch.search import trial as search
from gansearch.search.optuna_search import ReusingOptunaSearch
from gansearch.search.pbt import first_population
from gansearch.search.trial import train_trial
from gansearch.space import load_space
from gansearch.trainer import Trainer
from tests.support.fake_tune import fake_session

FIXTURES = Path(__file__).parents[1] / "fixtures"
SMALL = FIXTURES / "small_space.yaml"
PBT = FIXTURES / "pbt_space.yaml"


def test_an_unreadable_checkpoint_fails_the_trial_once_saying_why(tmp_path, monkeypatch):
    space = load_space(SMALL)
    directory = tmp_path / "ckpt"
    directory.mkdir()
    (directory / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    fake = fake_session(monkeypatch, directory, load_dataset("digits"))
    config = {"optim.lr_d": 0.1, "optim.k": 1, "generator.units": "[64, 64]"}
    train_trial(config, space, None)  # returns: Tune sees an ended trial, not a crash
    assert len(fake.reports) == 1
    report, checkpoint = fake.reports[0]
    assert checkpoint is None and report["session_epochs"] == 0
    status, reason = trial_outcome(report, None, space.budget.max_epochs)
    assert status == "failed" and "cannot resume" in reason and "trainer.pt" in reason
    optuna = ReusingOptunaSearch(space=space.optuna_space(), metric="valid_ll", mode="max")
    assert not optuna._usable(report)  # Optuna records it as FAIL


def test_a_session_that_starts_from_a_finished_checkpoint_reports_its_state(
    tmp_path, monkeypatch
) -> None:
    """PBT can hand a trial a copy of a checkpoint that is already at the budget (after a resume
    leaves the population out of step). The session then trains nothing; it must still report
    the state it holds, or Tune keeps the trial's older result and calls it stopped early."""

    from gansearch.data import load_dataset
    from gansearch.search import trial as search
    from gansearch.trainer import Trainer

    space = load_space(PBT).with_budget(max_epochs=2)
    config = first_population(space)[0]
    dataset = load_dataset("digits")
    donor = Trainer(space.trial_config(config), dataset)
    donor.fit(2)
    directory = tmp_path / "ckpt"
    directory.mkdir()
    donor.save_checkpoint(directory / search.CHECKPOINT_FILE)
    (directory / search.ORIGIN_FILE).write_text(json.dumps({"trial_id": "t_00003", "epoch": 2}))

    fake = fake_session(monkeypatch, directory, dataset)

    search.train_trial(config, space, None)
    assert len(fake.reports) == 1
    report, checkpoint = fake.reports[0]
    assert report["epoch"] == 2 and report["valid_ll"] == donor.history[-1].valid_ll
    assert report["session_epochs"] == 0  # nothing trained: the budget counts nothing
    assert report["copied_from"] == "t_00003" and report["copied_epoch"] == 2
    assert search.PBT_TIME not in report  # the last report: no copy after it
    assert checkpoint is not None
    assert trial_outcome(report, None, space.budget.max_epochs) == ("finished", "")


def test_out_of_gpu_memory_names_the_packing_to_lower(tmp_path, monkeypatch):
    space = load_space(SMALL)
    space = dataclasses.replace(space, resources=dataclasses.replace(space.resources, gpus=0.25))
    fake = fake_session(monkeypatch, None, load_dataset("digits"))

    def out_of_memory(self):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "run_epoch", out_of_memory)
    config = {"optim.lr_d": 0.1, "optim.k": 1, "generator.units": "[64, 64]"}
    search.train_trial(config, space, None)
    assert len(fake.reports) == 1
    report = fake.reports[0][0]
    status, reason = trial_outcome(report, None, space.budget.max_epochs)
    assert status == "failed"
    assert "resources.gpus 0.25 (4 trial(s) per GPU)" in reason and "raise resources.gpus" in reason


def test_trials_get_an_absolute_data_dir_from_the_flag_or_the_drivers_environment(
    tmp_path, monkeypatch
):
    from gansearch.search.trial import trial_data_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GANSEARCH_DATA_DIR", raising=False)
    assert trial_data_dir(None) is None  # each node's own cache
    assert trial_data_dir("data") == str(tmp_path / "data")  # trials run in another directory
    monkeypatch.setenv("GANSEARCH_DATA_DIR", "shared/data")
    assert trial_data_dir(None) == str(tmp_path / "shared" / "data")
