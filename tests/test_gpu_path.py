"""The CUDA path, checked where it can be on a CPU: no host synchronisation per training step
(counted through the CPU equivalents of the calls that would wait for a GPU), and a trial that
runs out of GPU memory fails with a message that names the packing to lower."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from fake_tune import fake_session

from gansearch.data import load_dataset
from gansearch.outcomes import trial_outcome
from gansearch.search import trial as search
from gansearch.space import load_space
from gansearch.train_config import TrainConfig, apply_overrides
from gansearch.trainer import DIVERGENCE_CHECK_EVERY, Trainer

SMALL = Path(__file__).parent / "fixtures" / "small_space.yaml"
SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__")


def _count_syncs(monkeypatch) -> list[str]:
    """Record every call that would copy a value from the GPU to the host (and so wait)."""
    calls: list[str] = []
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.slow
def test_a_training_epoch_syncs_with_the_host_a_bounded_number_of_times(monkeypatch):
    config = apply_overrides(
        TrainConfig(),
        {
            "data.name": "digits",
            "optim.batch_size": 4,  # 299 steps an epoch
            "generator.units": [32, 32],
            "discriminator.units": [16, 16],
            "eval.every": 0,
        },
    )
    trainer = Trainer(config, load_dataset("digits"))
    calls = _count_syncs(monkeypatch)
    trainer.run_epoch()
    steps = len(trainer.train_x) // 4
    checks = math.ceil(steps / DIVERGENCE_CHECK_EVERY)
    # The divergence checks (every DIVERGENCE_CHECK_EVERY steps and at the end), the parameter
    # norms and the epoch's means: a handful, not one per step.
    assert steps >= 290 and len(calls) <= checks + 8, calls


def test_out_of_gpu_memory_names_the_packing_to_lower(tmp_path, monkeypatch):
    space = load_space(SMALL)
    space = dataclasses.replace(space, resources=dataclasses.replace(space.resources, gpus=0.25))
    fake = fake_session(monkeypatch, None, load_dataset("digits"))

    def out_of_memory(self):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "run_epoch", out_of_memory)
    config = {"optim.lr_d": 0.1, "optim.k": 1, "generator.units": "[64, 64]"}
    search.train_trial(config, space, None)
    assert len(fake.reports) == 1
    report = fake.reports[0][0]
    status, reason = trial_outcome(report, None, space.budget.max_epochs)
    assert status == "failed"
    assert "resources.gpus 0.25 (4 trial(s) per GPU)" in reason and "raise resources.gpus" in reason
