"""The GPU device check can run here: its CPU dry run goes end to end in about a minute, so the
script a GPU session depends on cannot rot between GPU sessions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py"


def test_device_check_dry_run_on_cpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "device_check.json").read_text())
    assert summary["machine"]["device"] == "cpu"
    assert summary["cuda_tests"]["failed"] == 0 and summary["cuda_tests"]["skipped"] >= 1
    assert summary["trainer"]["trainer_samples_per_s"] > 0 and summary["trainer"]["ratio"] > 0
    assert summary["trainer"]["compiled_samples_per_s"] > 0
    assert summary["parzen"]["ratio"] > 0
    assert [r["trials"] for r in summary["search"]] == [1, 2]
    for row in summary["search"]:
        assert row["finished"] == row["trials"] and row["trial_epochs_per_s"] > 0
    markdown = (tmp_path / "device_check.md").read_text()
    assert "| trials together |" in markdown and "CUDA-marked tests" in markdown


def test_device_check_without_a_gpu_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "--device cpu is the dry run" in done.stderr
