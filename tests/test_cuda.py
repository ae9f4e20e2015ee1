"""The CUDA path on a real GPU (skipped without one; benchmarks/device_check.py runs these with
`pytest -m cuda`): training, exact resume, no host sync between divergence checks, sampling and
Parzen scoring on the device, and trials packed two to a GPU."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from gansearch.cli import main
from gansearch.data import load_dataset
from gansearch.train_config import TrainConfig, apply_overrides
from gansearch.trainer import DIVERGENCE_CHECK_EVERY, Trainer

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]
SMALL = Path(__file__).parent / "fixtures" / "small_space.yaml"


def _config(**changes):
    base = {
        "data.name": "digits",
        "device": "cuda",
        "generator.units": [64, 64],
        "discriminator.units": [32, 32],
        "optim.batch_size": 25,
        "eval.samples": 500,
    }
    return apply_overrides(TrainConfig(), {**base, **changes})


def test_training_on_the_gpu_resumes_exactly(tmp_path):
    data = load_dataset("digits")
    whole = Trainer(_config(), data)
    whole.fit(2)
    half = Trainer(_config(), data)
    half.fit(1)
    half.save_checkpoint(tmp_path / "ckpt.pt")
    resumed = Trainer.from_checkpoint(tmp_path / "ckpt.pt", data)
    resumed.fit(2)
    assert resumed.device.type == "cuda" and resumed.train_x.device.type == "cuda"
    for a, b in zip(whole.generator.parameters(), resumed.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    assert whole.history[-1].valid_ll == resumed.history[-1].valid_ll


def test_no_host_sync_between_divergence_checks():
    trainer = Trainer(_config(**{"eval.every": 0}), load_dataset("digits"))
    trainer.run_epoch()  # warm-up (allocations may sync)
    torch.cuda.set_sync_debug_mode("error")
    try:
        m = trainer.config.optim.batch_size
        x = trainer.train_x[: m * 1]
        for _ in range(min(20, DIVERGENCE_CHECK_EVERY - 1)):
            trainer._simultaneous_step(x, 0.5)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_samples_and_parzen_stay_on_the_gpu():
    trainer = Trainer(_config(), load_dataset("digits"))
    z = trainer.noise(10)
    assert z.device.type == "cuda"
    config = trainer.parzen_config(None)
    assert config.device.startswith("cuda")
    result = trainer.evaluate(500, None)
    assert math.isfinite(result.valid_mean)  # computed on the device


def test_two_trials_share_one_gpu(tmp_path):
    space = tmp_path / "space.yaml"
    text = SMALL.read_text().replace(
        "resources: {cpus: 1, gpus: 0,", "resources: {cpus: 1, gpus: 0.5,"
    )
    space.write_text(text.replace("trainer:\n", "trainer:\n  device: cuda\n", 1))
    args = ["run", "--space", str(space), "--results-dir", str(tmp_path), "--report-top", "0"]
    assert main(args) == 0
    table = pd.read_parquet(tmp_path / "small" / "results.parquet")
    assert set(table["status"]) <= {"finished", "stopped early"}
