"""The paper's final evaluation of a generator, in one place: Table 1's protocol on both sigma
grids, and the quality classifier's view of the same samples.

`gansearch train` (its best validation epoch), `gansearch evaluate` (any checkpoint, any seed)
and `gansearch report` (a search's best configurations) all call `final_evaluation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from gansearch.parzen import ParzenResult
    from gansearch.trainer import Trainer


def seeded_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """The torch.Generator of seeded noise (the report's and `gansearch evaluate`'s)."""
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


@dataclass(frozen=True)
class FinalEvaluation:
    """One generator's final evaluation: the Parzen result on each sigma grid (`released`,
    the grid that chooses, then `fine`), the number of sigmas of each grid, the samples, and
    the quality classifier's result on them (gansearch.quality's, None without a scorer)."""

    grids: dict[str, ParzenResult]
    grid_sizes: dict[str, int]
    samples: np.ndarray
    quality: Any = None

    @property
    def released(self) -> ParzenResult:
        """The result on the released 10-value grid: Table 1's number."""
        return self.grids["released"]

    @property
    def fine(self) -> ParzenResult:
        """The same samples with sigma chosen on the finer grid (`eval.fine_sigmas`)."""
        return self.grids["fine"]


def final_evaluation(
    trainer: Trainer, seed: int | None = None, scorer: Any = None, what: str = "final samples"
) -> FinalEvaluation:
    """`eval.final_samples` samples of `trainer`'s generator, scored with sigma chosen on the
    first `eval.final_n_valid` validation images on each grid of `eval.sigma_grids()` (the
    test set chooses nothing), and by `scorer` (a gansearch.quality.QualityScorer) if given.

    The noise is seeded with `seed`, or with None drawn from the trainer's own evaluation
    stream (what `gansearch train` does at the end of a run).
    """
    from gansearch.parzen import evaluate

    e = trainer.config.eval
    rng = None if seed is None else seeded_generator(trainer.device, seed)
    samples = trainer.sample(e.final_samples, rng=rng).numpy()
    dataset = trainer.dataset
    grids = e.sigma_grids()
    results = {
        name: evaluate(
            samples,
            dataset.valid,
            dataset.test,
            config=trainer.parzen_config(e.final_n_valid, sigmas),
        )
        for name, sigmas in grids.items()
    }
    return FinalEvaluation(
        grids=results,
        grid_sizes={name: len(sigmas) for name, sigmas in grids.items()},
        samples=samples,
        quality=scorer.score(samples, what) if scorer is not None else None,
    )
