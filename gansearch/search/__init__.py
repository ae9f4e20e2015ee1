"""The search: Ray Tune schedules trials of the trainer, Optuna proposes, ASHA stops weak ones.

    from gansearch.search import RunOptions, run_search
    outcome = run_search(load_space("search_spaces/digits.yaml"), RunOptions())
    print(outcome.table)            # one row per trial; also written as results.parquet

The only package that imports Ray. Its modules, in the order a search uses them:

- driver: `run_search` and its steps, from the space file to results.parquet;
- cluster: starting or joining Ray (an address checked before Ray is asked), the resources a
  trial asks for, Ray's logs;
- local_ray: the local Ray instance, in a session of its own (a signal to the driver's process
  group reaches the driver alone);
- state: Ray's pickled state in the experiment directory, signed as it is written and checked
  before a resume loads it (gansearch.signing holds the key and the HMACs);
- tuner: the Tuner (trainable, checkpoints, scheduler: ASHA, median, none), or a restored one;
- trial: `train_trial`, the function trainable, and its session's reports;
- optuna_search: Ray's OptunaSearch that reuses a repeated proposal's result;
- pbt: population-based training (synchronous, diverged members replaced);
- events: the one Tune callback (report and trial logs, progress, MLflow);
- budget: the trial-epoch budget as a Tune stopper;
- results: the results table from Tune's ResultGrid;
- ray_private: every use of a private Ray attribute, and why.

What needs no Ray lives outside: gansearch.outcomes (trial statuses), gansearch.histories (report
histories, budget curves), gansearch.progress (the progress printer), gansearch.leaderboard.

Every trial reports the validation Parzen log-likelihood (`valid_ll`) with a checkpoint after
every evaluation epoch. Tune keeps two checkpoints per trial (pbt: all): the latest and the one of
its best evaluation on the primary objective (`best_checkpoint` in the results table), which
`gansearch report` evaluates, since a GAN's last epoch is seldom its best. When the space asks
for them, the same reports carry the quality classifier's FID, class coverage and confidence;
with several objectives Optuna's multi-objective sampler (NSGA-II by default) gets all of them,
early stopping the primary one, and the result is a Pareto front. A diverged trial reports
`diverged` and ends (Optuna: FAIL, never a NaN); under pbt it is replaced by a copy.
"""

from gansearch.errors import SearchError
from gansearch.search.driver import RunOptions, SearchOutcome, run_search

__all__ = ["RunOptions", "SearchError", "SearchOutcome", "run_search"]
