"""The trial: one configuration trained by `train_trial`, Ray Tune's function trainable.

It builds the trainer for the sampled configuration (or from Tune's checkpoint: its own after a
retry, another trial's under pbt), trains epoch by epoch and reports every evaluation with a
checkpoint, so a scheduler can stop, pause or copy it and a retried trial resumes where it was.
A divergence, an out-of-memory error or an unreadable checkpoint ends it with a report that
says so (never a NaN: Optuna would keep such a trial RUNNING).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune

from gansearch.data import load_dataset
from gansearch.data.locate import DATA_DIR_ENV
from gansearch.errors import DataError, DivergenceError, GansearchError
from gansearch.experiment import CHECKPOINT_FILE
from gansearch.train_config import MUTABLE_SETTINGS

if TYPE_CHECKING:
    from gansearch.data.base import Dataset
    from gansearch.quality import QualityScorer
    from gansearch.space import SearchSpace
    from gansearch.train_config import DataConfig, TrainConfig
    from gansearch.trainer import Trainer


PBT_TIME = "pbt_epoch"  # the epoch, in every pbt report but the last one


ORIGIN_FILE = "origin.json"  # beside CHECKPOINT_FILE: the trial and epoch that wrote it


def _chaos(space: SearchSpace, epoch: int) -> None:
    """Fault injection (space.chaos): once per trial, crash, die or diverge at `epoch`."""
    chaos = space.chaos
    kinds = {
        chaos.kill_at_epoch: "kill",
        chaos.crash_at_epoch: "crash",
        chaos.diverge_at_epoch: "diverge",
    }
    kind = kinds.get(epoch)
    if kind is None:
        return
    context = tune.get_context()
    index = re.search(r"_(\d+)$", context.get_trial_id() or "")
    if chaos.trials is not None and (index is None or int(index[1]) not in chaos.trials):
        return
    # The trial's folder in the experiment's storage outlives its worker processes (the local
    # trial directory does not: a restarted trial may get another one).
    storage = context.get_storage()
    folder = getattr(storage, "trial_fs_path", None) or context.get_trial_dir()
    marker = Path(folder) / f"chaos-{kind}-fired"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(epoch))
    if kind == "kill":
        os._exit(17)  # the worker process dies, as on a lost node or an OOM kill
    if kind == "diverge":
        raise DivergenceError(f"chaos: injected divergence at epoch {epoch}")
    raise RuntimeError(f"chaos: injected crash at the start of epoch {epoch}")


def train_trial(
    config: dict[str, Any],
    space: SearchSpace,
    data_dir: str | None,
    quality: QualityScorer | None = None,
) -> None:
    """Ray Tune function trainable: one trial of the search (runs in a Ray worker).

    `quality` is the driver's gansearch.quality.QualityScorer when the space asks for FID,
    coverage or confidence (None otherwise).
    """
    import torch

    torch.set_num_threads(max(1, int(space.resources.cpus)))  # no oversubscription
    train_config = space.trial_config(config)
    # Where the trial runs, and data that is never downloaded inside a trial.
    node = ray.get_runtime_context().get_node_id()
    dataset = _trial_dataset(train_config.data, data_dir, node)
    me = tune.get_context().get_trial_id()
    try:
        trainer, copied = _start_trainer(train_config, dataset, quality, me)
    except GansearchError as exc:
        # Retrying would read the same file again: the trial fails once, saying why.
        tune.report({"failed": 1, "error": f"cannot resume: {exc}", "session_epochs": 0})
        return
    in_force = {  # the mutable searched values this trial trains with (its pbt schedule)
        p.key: p.decode(config[p.key])
        for p in space.params
        if p.base in MUTABLE_SETTINGS and p.key in config
    }
    session = _TrialSession(space, trainer, me, node, in_force, copied)
    max_epochs = space.budget.max_epochs
    while trainer.epoch < max_epochs:
        start = time.perf_counter()
        try:
            _chaos(space, trainer.epoch + 1)
            metrics = trainer.run_epoch()
        except torch.cuda.OutOfMemoryError:
            share = space.resources.gpus
            session.end(
                "failed",
                f"CUDA ran out of memory at epoch {trainer.epoch + 1} with resources.gpus "
                f"{share:g} ({round(1 / share) if 0 < share < 1 else 1} trial(s) per GPU): pack "
                "fewer trials per GPU (raise resources.gpus) or lower eval.samples",
            )
            return
        except DivergenceError as exc:
            session.end("diverged", str(exc), epoch=trainer.epoch + 1)
            return
        session.loop_seconds += time.perf_counter() - start
        if metrics.valid_ll is None:
            continue
        report = {k: v for k, v in metrics.as_dict().items() if v is not None}
        for name in space.objective.metrics:  # never hand Optuna a NaN or an infinity
            value = report.get(name)
            if value is None or not math.isfinite(value):
                session.end(
                    "diverged", f"{name} is {value} at epoch {metrics.epoch}", metrics.epoch
                )
                return
        session.report(report)
    if trainer.epoch == session.start_epoch:
        # Nothing left to train: the checkpoint this session started from (a PBT copy of a
        # finished trial, or a finished trial Tune restarted after an interruption) is already at
        # the budget. Report its last evaluation, so that Tune's last result, and the trial's
        # outcome, are those of the state it holds.
        evaluated = [m for m in trainer.history if m.valid_ll is not None]
        if evaluated:
            session.report({k: v for k, v in evaluated[-1].as_dict().items() if v is not None})


NO_COPY = {"copied_from": "", "copied_epoch": -1}


def _start_trainer(
    train_config: TrainConfig, dataset: Dataset, quality: QualityScorer | None, me: str
) -> tuple[Trainer, dict[str, Any]]:
    """The trial's trainer: from Tune's checkpoint if it has one (its own, or under pbt a
    copied one: then which trial and epoch it came from), else a new one."""
    from gansearch.trainer import Trainer

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return Trainer(train_config, dataset, quality=quality), dict(NO_COPY)
    with checkpoint.as_directory() as directory:
        # The trial's own configuration: under pbt it may hold new values of the mutated
        # settings, which the copied state continues with.
        trainer = Trainer.from_checkpoint(
            Path(directory) / CHECKPOINT_FILE,
            dataset,
            config=train_config,
            quality=quality,
            may_change=MUTABLE_SETTINGS,
        )
        origin_file = Path(directory) / ORIGIN_FILE
        origin = json.loads(origin_file.read_text()) if origin_file.exists() else {}
    if origin.get("trial_id") not in (None, me):
        return trainer, {"copied_from": origin["trial_id"], "copied_epoch": int(origin["epoch"])}
    return trainer, dict(NO_COPY)


class _TrialSession:
    """One run of the trainable (a session): what its reports carry, and how they are made.

    It trains epochs start_epoch+1, ...: the session's own count is what the trial-epoch budget
    adds up (a retry or a copied checkpoint starts a new session). Under pbt every report carries
    the values in force and the copy keys (empty when nothing was copied: Tune's progress.csv
    keeps only its first row's keys); the first report names the checkpoint it started from.
    """

    def __init__(
        self,
        space: SearchSpace,
        trainer: Trainer,
        trial_id: str,
        node: str,
        in_force: dict[str, Any],
        copied: dict[str, Any],
    ) -> None:
        self.space, self.trainer, self.trial_id, self.node = space, trainer, trial_id, node
        self.in_force, self.copied = in_force, copied
        self.id, self.start_epoch = uuid.uuid4().hex[:12], trainer.epoch
        self.loop_seconds = 0.0

    def common(self) -> dict[str, Any]:
        """What every report carries."""
        fields: dict[str, Any] = {
            "session": self.id,
            "session_epochs": self.trainer.epoch - self.start_epoch,
            "reported_at": time.time(),
            "node": self.node,
        }
        if self.space.scheduler.type == "pbt":
            fields["hp"] = dict(self.in_force)
            fields.update(self.copied)
            self.copied = dict(NO_COPY)
        return fields

    def report(self, report: dict[str, Any]) -> None:
        """An evaluated epoch's report to Tune, with the trainer's checkpoint."""
        import torch

        trainer = self.trainer
        report["loop_seconds"] = self.loop_seconds
        report["threads"] = torch.get_num_threads()
        report["diverged"] = 0
        report.update(self.common())
        if trainer.device.type == "cuda":  # what packing trials on one GPU costs each of them
            report["gpu_memory_mb"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        if self.space.scheduler.type == "pbt" and trainer.epoch < self.space.budget.max_epochs:
            report[PBT_TIME] = trainer.epoch  # the scheduler's clock: no copy after the last epoch
        with tempfile.TemporaryDirectory(prefix="gansearch-ckpt-") as directory:
            trainer.save_checkpoint(Path(directory) / CHECKPOINT_FILE)
            origin = {"trial_id": self.trial_id, "epoch": trainer.epoch}
            (Path(directory) / ORIGIN_FILE).write_text(json.dumps(origin))
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))

    def end(self, outcome: str, error: str, epoch: int | None = None) -> None:
        """The trial's last report: it `outcome` ("diverged" or "failed") because of `error`;
        a divergence at `epoch` counts that epoch as trained."""
        report = {outcome: 1, "error": error, **self.common()}
        if epoch is not None:
            report["epoch"] = epoch
            report["session_epochs"] = epoch - self.start_epoch
        tune.report(report)


def _trial_dataset(data: DataConfig, data_dir: str | None, node: str) -> Dataset:
    """The trial's data set, read on its node and never downloaded there.

    The driver has already found (or downloaded) the data; a trial on a node that lacks it
    fails with a message naming the node and the directory instead of downloading its own copy.
    """
    try:
        return load_dataset(data.name, data_dir, fold=data.fold, download=False)
    except DataError as exc:
        raise DataError(
            f"on Ray node {node}: {exc}. Every node must see the data set: put the data directory "
            "on storage all nodes mount at the same path and pass it with --data-dir or "
            "GANSEARCH_DATA_DIR, or run `gansearch data NAME` on every node (cluster/README.md)"
        ) from None


def trial_data_dir(given: str | None) -> str | None:
    """The data directory the trials use: --data-dir, else the driver's GANSEARCH_DATA_DIR, as
    an absolute path (a worker node's environment need not have the driver's variable); None
    leaves each node to its own per-user cache."""
    if given:
        return str(Path(given).expanduser().resolve())
    env = os.environ.get(DATA_DIR_ENV)
    return str(Path(env).expanduser().resolve()) if env else None
