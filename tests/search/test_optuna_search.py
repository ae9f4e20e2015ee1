"""The Optuna searcher (gansearch.search.optuna_search): configurations given to try first, a
configuration proposed twice trained once, a proposal left by an interrupted driver, and one
Optuna trial per Tune trial after a resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from gansearch.search.optuna_search import ReusingOptunaSearch
from gansearch.space import load_space, make_sampler
from tests.support.tracked_search import TRIALS

SMALL = Path(__file__).parents[1] / "fixtures" / "small_space.yaml"


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


@pytest.mark.slow
def test_optuna_proposes_the_given_configurations_first(tmp_path):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(
        SMALL.read_text().replace(
            "search: {algorithm: tpe, seed: 0}",
            "search:\n  algorithm: tpe\n  seed: 0\n  start_with:\n"
            "    - {optim.lr_d: 0.1, optim.k: 2}\n"
            "    - {optim.lr_d: 0.02, optim.k: 1, generator.units: [128, 128]}",
        )
    )
    space = load_space(space_file)
    searcher = ReusingOptunaSearch(
        space=space.optuna_space(),
        metric="valid_ll",
        mode="max",
        sampler=make_sampler(space.search),
        start_with=space.search.start_with,
    )
    first, second, third = (searcher.suggest(f"t{i}") for i in range(3))
    assert first["optim.lr_d"] == 0.1 and first["optim.k"] == 2
    assert set(first) == {p.key for p in space.params}  # a key left out is sampled
    assert second == {"optim.lr_d": 0.02, "optim.k": 1, "generator.units": "[128, 128]"}
    assert third not in (first, second)


@pytest.mark.slow
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
