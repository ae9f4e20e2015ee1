"""A stand-in for the Ray Tune session a trial function runs in, to call trial.train_trial
directly: what it reports is recorded, and the checkpoint it starts from is given."""

from __future__ import annotations

from pathlib import Path

import pytest


class FakeTune:
    """The parts of ray.tune a trial function calls inside a session, recorded."""

    def __init__(self, checkpoint) -> None:
        from ray import tune

        self.Checkpoint = tune.Checkpoint
        self.checkpoint, self.reports = checkpoint, []

    def get_checkpoint(self):
        return self.checkpoint

    def get_context(self):
        return type("Context", (), {"get_trial_id": staticmethod(lambda: "t_00001")})()

    def report(self, metrics, checkpoint=None):
        self.reports.append((dict(metrics), checkpoint))


def fake_session(monkeypatch: pytest.MonkeyPatch, checkpoint_dir: Path | None, dataset) -> FakeTune:
    """Make gansearch.search.trial.train_trial run here: starting from `checkpoint_dir` (None:
    from scratch), on `dataset`, on a node named "node"."""
    from ray import tune

    from gansearch.search import trial as search

    start = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    fake = FakeTune(start)
    monkeypatch.setattr(search, "tune", fake)
    monkeypatch.setattr(search, "_trial_dataset", lambda *args: dataset)
    node = type("Runtime", (), {"get_node_id": staticmethod(lambda: "node")})()
    monkeypatch.setattr(search.ray, "get_runtime_context", lambda: node)
    return fake
