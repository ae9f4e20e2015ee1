"""The paper's final evaluation of a generator: both sigma grids on the same samples, seeded or
from the run's own noise stream, and the classifier's view of those samples."""

from __future__ import annotations

import numpy as np
import pytest

from gansearch.data import load_dataset
from gansearch.evaluation import final_evaluation
from gansearch.parzen import evaluate
from gansearch.train_config import TrainConfig, apply_overrides
from gansearch.trainer import Trainer

SETTINGS = {
    "data.name": "digits",
    "generator.noise_dim": 8,
    "generator.units": [32],
    "discriminator.units": [16],
    "discriminator.keep_probs": [0.8, 0.5],
    "optim.batch_size": 50,
    "eval.every": 0,
    "eval.final_samples": 400,
    "eval.final_n_valid": None,
}


class _Scorer:
    """A stand-in quality scorer that records what it was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[np.ndarray, str]] = []

    def score(self, samples: np.ndarray, what: str) -> str:
        self.seen.append((samples, what))
        return "scored"


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    config = apply_overrides(TrainConfig(), SETTINGS, source="test")
    trained = Trainer(config, load_dataset("digits"))
    trained.fit(1)
    return trained


def test_both_grids_score_the_same_seeded_samples(trainer: Trainer) -> None:
    scorer = _Scorer()
    final = final_evaluation(trainer, seed=3, scorer=scorer, what="trial x")
    e = trainer.config.eval
    assert list(final.grids) == ["released", "fine"]
    assert final.grid_sizes == {"released": len(e.sigmas), "fine": len(e.fine_sigmas)}
    assert final.samples.shape == (400, 64)
    assert final.quality == "scored" and scorer.seen[0][1] == "trial x"
    assert scorer.seen[0][0] is final.samples
    # Each grid is the Parzen protocol on these very samples, sigma chosen on validation.
    dataset = trainer.dataset
    for name, sigmas in e.sigma_grids().items():
        expected = evaluate(
            final.samples,
            dataset.valid,
            dataset.test,
            config=trainer.parzen_config(e.final_n_valid, sigmas),
        )
        assert final.grids[name].test_mean == pytest.approx(expected.test_mean)
        assert final.grids[name].sigma in sigmas
    assert final.released is final.grids["released"] and final.fine is final.grids["fine"]
    # The fine grid can only do as well or better on validation: it holds more sigmas.
    assert final.fine.valid_mean >= final.released.valid_mean - 1e-6


def test_a_seed_gives_the_same_samples_and_none_draws_from_the_runs_stream(
    trainer: Trainer,
) -> None:
    a = final_evaluation(trainer, seed=5)
    b = final_evaluation(trainer, seed=5)
    assert np.array_equal(a.samples, b.samples) and a.quality is None
    state = trainer.rngs["eval"].get_state()
    c = final_evaluation(trainer, seed=None)
    assert not np.array_equal(c.samples, a.samples)
    assert not np.array_equal(trainer.rngs["eval"].get_state().numpy(), state.numpy())
