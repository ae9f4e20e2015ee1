"""The search-space file: what is searched, how, for how long, on what, and where results go.

A search space is YAML with these sections (search_spaces/digits.yaml is a complete example):

    name: digits-quick            # experiment name (default: the file's stem)
    dataset: {name: digits}       # as gansearch.data.load_dataset names it; fold for TFD
    trainer: {...}                # fixed trainer settings, the schema of configs/*.yaml
    params:                       # searched trainer settings, by dotted key
      optim.lr_d: {distribution: loguniform, low: 0.01, high: 0.5}
      optim.k: {distribution: int, low: 1, high: 5}
      generator.units: {distribution: int, low: 600, high: 1600, step: 200}  # every layer
      discriminator.keep_probs[0]: {distribution: uniform, low: 0.5, high: 1.0}  # one entry
      discriminator.units: {distribution: categorical, choices: [[240, 240], [480, 480]]}
    search: {algorithm: tpe, seed: 0, options: {}}          # Optuna sampler and its options
      # start_with: [{optim.lr_d: 0.1, optim.k: 1, ...}]      # configurations to try first
    scheduler: {type: asha, grace_period: 2, reduction_factor: 3}   # or median, pbt, none
    budget: {trials: 20, max_epochs: 10, trial_epochs: null, time_limit: null, concurrency: 2}
    resources: {cpus: 1, gpus: 0, max_failures: 2}
    objective: {metric: valid_ll, eval_every: 1, samples: 2000, n_valid: 1000, quality: false}
    results: {dir: runs}
    chaos: {crash_at_epoch: null, kill_at_epoch: null, diverge_at_epoch: null, trials: null}

`objective.metric` is one metric or a list: `[valid_ll, fid]` makes the search multi-objective
(NSGA-II unless `search.algorithm` names another multi-objective sampler), and its result is a
Pareto front; the first metric is the primary one, which early stopping uses. Metrics: valid_ll
(maximised), fid, class_kl (minimised), classes_covered, confidence (maximised); the last four
come from gansearch.quality's classifier, computed on the same samples as valid_ll at every
evaluation epoch (also logged, without being objectives, with `quality: true`).

`search.start_with` lists configurations to try first, each a mapping of searched keys to values
(a key left out is drawn as usual): the first trials of an Optuna search (its enqueued trials),
the first members of a pbt population. Each value must lie in its parameter's distribution,
and there may be no more of them than `budget.trials`.

`scheduler.type: pbt` is population-based training: `budget.trials` random configurations (so
`search.algorithm: random`) trained side by side, and every `perturbation_interval` epochs after
`grace_period` the bottom `quantile_fraction` copy a top trial's state and perturb the searched
parameters listed in `mutate`, which must be settings the trainer can change mid-run
(train_config.MUTABLE_SETTINGS: learning rates, k, momentum, dropout; never widths or pieces).
`budget.trial_epochs` ends the search once all trials together have trained that many epochs.

`chaos` is a testing aid, not a search setting: with it, every trial's first attempt raises
(`crash_at_epoch`) or kills its worker process (`kill_at_epoch`) at the start of that epoch, to
see retries from checkpoints work (`resources.max_failures`), or reports a divergence there
(`diverge_at_epoch`, once per trial), to see pbt replace a diverged member; `trials` limits it
to the trials of those indices (0 is the first trial). Leave it out of real searches.

`load_space` validates all of it before anything starts; every error names the file, the key
path and the reason. A scalar searched for a list setting (layer widths, keep-probabilities) sets
every entry; `key[i]` sets entry i; whole-list parameters apply before indexed ones.
The package: `sections` (the settings classes of each section, the file as written (SpaceFile,
whose JSON Schema `space_schema` publishes) and SearchSpace), `rules` (what spans
sections, each parameter, `start_with`), `load` (reading a file or an experiment's stored copy).
"""

from gansearch.space.load import load_space, stored_space
from gansearch.space.rules import make_sampler
from gansearch.space.sections import (
    SAMPLERS,
    Budget,
    Chaos,
    Objective,
    Param,
    Resources,
    Results,
    Scheduler,
    SearchAlgorithm,
    SearchSpace,
    SpaceFile,
    optuna_value,
    space_schema,
)

__all__ = [
    "SAMPLERS",
    "Budget",
    "Chaos",
    "Objective",
    "Param",
    "Resources",
    "Results",
    "Scheduler",
    "SearchAlgorithm",
    "SearchSpace",
    "SpaceFile",
    "load_space",
    "make_sampler",
    "optuna_value",
    "space_schema",
    "stored_space",
]
