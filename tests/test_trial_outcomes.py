"""How a trial's outcome is told: a checkpoint that cannot be read fails the trial once with the
reason, broken and never-started trials rank last, epochs come from what the trial reported,
and a resumed search's progress starts from what it had done."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fake_tune import fake_session

from gansearch.data import load_dataset
from gansearch.experiment import (
    CHECKPOINT_FILE,
    append_report,
    append_trial_end,
    read_reports,
    read_trial_log,
)
from gansearch.outcomes import trial_outcome
from gansearch.search.optuna_search import ReusingOptunaSearch
from gansearch.search.results import results_table
from gansearch.search.trial import train_trial
from gansearch.space import load_space

SMALL = Path(__file__).parent / "fixtures" / "small_space.yaml"


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


class _Result:
    """What Tune's ResultGrid yields for one trial, reduced to what results_table reads."""

    def __init__(self, trial_id, metrics, config, path):
        self.metrics, self.config, self.error = metrics, config, None
        self.path, self.checkpoint, self.best_checkpoints = str(path / trial_id), None, []
        self.metrics_dataframe = pd.DataFrame()


def test_broken_and_never_started_trials_rank_last_with_what_they_reported(tmp_path):
    space = load_space(SMALL)
    experiment = tmp_path / "small"
    experiment.mkdir()
    config = {"optim.lr_d": 0.1, "optim.k": 2, "generator.units": "[64, 64]"}
    for epoch, value in ((1, 5.0), (2, 9.0)):  # "broken" scored well before it failed
        append_report(experiment, "broken", {"epoch": epoch, "valid_ll": value})
    append_report(experiment, "broken", {"failed": 1, "error": "cannot resume: x"})
    append_trial_end(experiment, "broken", "failed", "cannot resume: x", 1.0)
    for epoch in (1, 2, 3):
        append_report(experiment, "good", {"epoch": epoch, "valid_ll": -1.0 + epoch})
    append_trial_end(experiment, "good", "finished", "", 2.0)
    grid = [
        _Result("broken", {"failed": 1}, config, tmp_path),
        _Result("good", {"epoch": 3, "valid_ll": 2.0}, config, tmp_path),
        _Result("pending", {}, config, tmp_path),
    ]
    table = results_table(
        grid,
        space,
        trial_log=read_trial_log(experiment),
        reports=read_reports(experiment),
    )
    assert table["trial_id"].tolist()[0] == "good"
    rows = table.set_index("trial_id")
    assert rows.loc["broken", "status"] == "failed" and rows.loc["broken", "epochs"] == 2
    assert rows.loc["broken", "valid_ll"] == 9.0  # what it measured stays in the table
    assert rows.loc["pending", "status"] == "not started"
    assert rows.loc["pending", "optim.k"] == 2  # its parameters, not empty ones
    assert rows.loc["pending", "epochs"] == 0


class _Scripted:
    """An Optuna sampler that proposes the given parameter sets, one per trial, in order."""

    def __new__(cls, proposals):
        import optuna

        class Sampler(optuna.samplers.BaseSampler):
            def __init__(self) -> None:
                self.queue, self.current = list(proposals), {}

            def infer_relative_search_space(self, study, trial):
                return {}

            def sample_relative(self, study, trial, search_space):
                return {}

            def before_trial(self, study, trial):
                self.current = self.queue.pop(0)

            def sample_independent(self, study, trial, name, distribution):
                return self.current[name]

        return Sampler()


def test_a_configuration_proposed_twice_is_not_trained_twice():
    space = load_space(SMALL)
    a = {"optim.lr_d": 0.1, "optim.k": 2, "generator.units": "[64, 64]"}
    b = {"optim.lr_d": 0.2, "optim.k": 1, "generator.units": "[128, 128]"}
    said: list[str] = []
    searcher = ReusingOptunaSearch(
        space=space.optuna_space(),
        metric="valid_ll",
        mode="max",
        sampler=_Scripted([a, a, b]),
        on_reuse=said.append,
    )
    first = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"valid_ll": 5.0, "epoch": 3})
    second = searcher.suggest("t2")  # Optuna proposes a again: told 5.0, then asked again
    assert first["optim.k"] == 2 and second["optim.k"] == 1  # t2 trains b, not a again
    trials = searcher._ot_study.trials
    assert len(trials) == 3 and trials[1].user_attrs["reused_from"] == 0
    assert trials[1].value == 5.0 and trials[1].params == trials[0].params
    assert [t.user_attrs.get("tune_trial_id") for t in trials] == ["t1", None, "t2"]
    assert said and "trial t1's configuration again" in said[0]


def test_a_proposal_left_by_an_interrupted_driver_goes_to_the_next_tune_trial(tmp_path):
    import optuna

    space = load_space(SMALL)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    def searcher():
        return ReusingOptunaSearch(
            space=space.optuna_space(),
            metric="valid_ll",
            mode="max",
            sampler=optuna.samplers.RandomSampler(seed=0),
            storage=optuna.storages.RDBStorage(storage),
            study_name="s",
        )

    before = searcher()
    proposed = before.suggest("t1")  # asked, then the driver was killed before saving its state
    after = searcher()  # a resumed driver whose saved state predates that proposal
    assert after.suggest("t7") == proposed
    after.on_trial_complete("t7", {"valid_ll": 1.0})
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 1 and study.trials[0].user_attrs["tune_trial_id"] == "t7"
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
