"""The trial-epoch budget as Ray Tune sees it: a Stopper that ends the search once its trials
have trained `budget.trial_epochs` epochs together (gansearch.histories.EpochCounter counts)."""

from __future__ import annotations

from ray import tune

from gansearch.histories import EpochCounter


class TrialEpochBudget(EpochCounter, tune.Stopper):
    """Ends the search once its trials have trained `limit` epochs together (see EpochCounter:
    each epoch trained counts once, whichever session trained it)."""
