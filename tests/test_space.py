"""The search-space file: every malformed example is rejected with file, key and reason."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from gansearch.cli import main
from gansearch.errors import ConfigError
from gansearch.space import load_space, make_sampler

FIXTURES = Path(__file__).parent / "fixtures"
BAD = sorted((FIXTURES / "bad_spaces").glob("*.yaml"))
SHIPPED = sorted((Path(__file__).parents[1] / "search_spaces").glob("*.yaml"))


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must start with '# expect: MESSAGE'"
    return first.removeprefix("# expect: ")


def test_there_are_at_least_twelve_malformed_examples():
    assert len(BAD) >= 12


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_malformed_space_names_file_key_and_reason(path):
    with pytest.raises(ConfigError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected_message(path) in message


@pytest.mark.parametrize("path", BAD[:4], ids=[p.stem for p in BAD[:4]])
def test_gansearch_run_exits_2_without_traceback(path, capsys, tmp_path):
    code = main(["run", "--space", str(path), "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert expected_message(path) in err and "Traceback" not in err
    assert not any(tmp_path.iterdir()), "nothing may start for a malformed space"


def test_missing_space_file(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["run", "--space", str(missing)]) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_spaces_are_valid(path):
    space = load_space(path)
    assert space.params and space.trainer.epochs == space.budget.max_epochs
    assert space.trainer.eval.every == space.objective.eval_every


def test_the_small_space_is_valid():
    space = load_space(FIXTURES / "small_space.yaml")
    assert space.name == "small" and [p.key for p in space.params] == [
        "optim.lr_d",
        "optim.k",
        "generator.units",
    ]


def test_trial_config_applies_scalars_lists_and_indices(tmp_path):
    text = (
        (FIXTURES / "small_space.yaml")
        .read_text()
        .replace(
            "params:\n",
            "params:\n"
            "  discriminator.keep_probs: {distribution: uniform, low: 0.3, high: 0.7}\n"
            "  discriminator.keep_probs[0]: {distribution: uniform, low: 0.6, high: 1.0}\n"
            "  discriminator.units: {distribution: int, low: 16, high: 64, step: 16}\n",
        )
    )
    path = tmp_path / "space.yaml"
    path.write_text(text)
    space = load_space(path)
    values = {
        "discriminator.keep_probs[0]": 0.9,  # index: applied after the whole-list value
        "discriminator.keep_probs": 0.4,  # a scalar sets every entry
        "discriminator.units": 48,
        "optim.lr_d": 0.05,
        "optim.k": 2,
        "generator.units": "[128, 128]",  # Optuna carries list choices as JSON
    }
    config = space.trial_config(values)
    assert config.discriminator.keep_probs == (0.9, 0.4, 0.4)
    assert config.discriminator.units == (48, 48)
    assert config.generator.units == (128, 128)
    assert (config.optim.lr_d, config.optim.k) == (0.05, 2)
    assert config.epochs == 3 and config.data.name == "digits"


def test_optuna_distributions_match_the_file():
    space = load_space(FIXTURES / "small_space.yaml")
    dists = space.optuna_space()
    lr = dists["optim.lr_d"]
    assert isinstance(lr, optuna.distributions.FloatDistribution) and lr.log
    assert math.isclose(lr.low, 0.01) and math.isclose(lr.high, 0.5)
    k = dists["optim.k"]
    assert isinstance(k, optuna.distributions.IntDistribution) and (k.low, k.high) == (1, 3)
    units = dists["generator.units"]
    assert units.choices == ("[64, 64]", "[128, 128]")


def test_budget_overrides_are_checked():
    space = load_space(FIXTURES / "small_space.yaml")
    changed = space.with_budget(trials=9, max_epochs=2)
    assert changed.budget.trials == 9 and changed.trainer.epochs == 2
    with pytest.raises(ConfigError, match="budget.max_epochs: must be >= 1, got 0"):
        space.with_budget(max_epochs=0)
    with pytest.raises(ConfigError, match="scheduler.grace_period"):
        load_space(FIXTURES / "bad_spaces" / "grace_over_budget.yaml")


def test_several_objectives_make_a_multi_objective_search_with_nsga_ii(tmp_path):
    text = (FIXTURES / "small_space.yaml").read_text()
    text = text.replace("search: {algorithm: tpe, seed: 0}", "search: {seed: 0}")
    single = tmp_path / "single.yaml"
    single.write_text(text)
    space = load_space(single)
    assert space.search.algorithm == "tpe" and not space.objective.multi
    assert not space.objective.needs_quality

    multi = tmp_path / "multi.yaml"
    old = "objective: {metric: valid_ll, mode: max,"
    multi.write_text(text.replace(old, "objective: {metric: [fid, valid_ll],"))
    space = load_space(multi)
    assert space.search.algorithm == "nsgaii"
    assert space.objective.metrics == ("fid", "valid_ll")
    assert space.objective.modes == ("min", "max")
    assert space.objective.primary == "fid" and space.objective.multi
    assert space.objective.needs_quality


def test_quality_metrics_can_be_logged_without_being_objectives(tmp_path):
    text = (FIXTURES / "small_space.yaml").read_text()
    path = tmp_path / "logged.yaml"
    path.write_text(text.replace("mode: max,", "mode: max, quality: true,"))
    space = load_space(path)
    assert space.objective.metrics == ("valid_ll",) and space.objective.needs_quality


def test_shipped_pareto_space_searches_parzen_and_fid():
    space = load_space(Path(__file__).parents[1] / "search_spaces" / "digits_pareto.yaml")
    assert space.objective.metrics == ("valid_ll", "fid")
    assert space.search.algorithm == "nsgaii"


def test_nsga_ii_sampler_pickles_into_ray_tunes_state_and_back():
    """Optuna 5.1's NSGA-II sampler holds a thread lock; Ray Tune pickles it with the
    experiment. gansearch's pickles without the lock and gets a new one back."""
    import pickle
    import threading

    space = load_space(Path(__file__).parents[1] / "search_spaces" / "digits_pareto.yaml")
    assert space.search.algorithm == "nsgaii"
    sampler = make_sampler(space.search)
    restored = pickle.loads(pickle.dumps(sampler))
    assert isinstance(restored, optuna.samplers.NSGAIISampler)
    locks = [v for v in vars(sampler).values() if isinstance(v, type(threading.Lock()))]
    assert len(locks) == len(
        [v for v in vars(restored).values() if isinstance(v, type(threading.Lock()))]
    )
    assert restored._population_size == sampler._population_size
