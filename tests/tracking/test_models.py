"""The best generators as MLflow models (gansearch.tracking.models): logged by the report,
registered, loadable with MLflow and PyTorch alone, and found and sampled by `gansearch sample`
exactly as the report sampled them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gansearch.cli import main
from gansearch.tracking import default_tracking_uri, model_name

pytestmark = pytest.mark.slow


def _best_row(tracked_search) -> dict:
    table = pd.read_parquet(tracked_search.root / "small" / "report" / "table1.parquet")
    ours = table[table["source"] == "gansearch"]
    return ours[ours["rank"] == 1].iloc[0].to_dict()


def test_sampled_generator_scores_as_the_reports_samples(tracked_search, tmp_path, capsys):
    best = _best_row(tracked_search)
    out = tmp_path / "samples.npy"
    n = int(best["n_samples"])
    args = ["sample", "--results-dir", str(tracked_search.root), "-n", str(n)]
    assert main([*args, "--seed", str(int(best["seed"])), "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (n, 8, 8) and samples.dtype == np.float32
    assert 0.0 <= samples.min() and samples.max() <= 1.0
    capsys.readouterr()
    assert main(["parzen", "--samples", str(out), "--dataset", "digits", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)["results"][0]
    assert scored["test_mean"] == pytest.approx(best["test_ll"], rel=1e-6)
    assert scored["sigma"] == best["sigma"]


def test_registered_generator_loads_with_mlflow_and_pytorch_alone(tracked_search, tmp_path):
    code = f"""
import sys
sys.modules["gansearch"] = None  # loading must not need gansearch
import mlflow, mlflow.pytorch, torch
from mlflow import MlflowClient
name = {model_name("small")!r}
version = max(int(v.version) for v in MlflowClient().search_model_versions(f"name = '{{name}}'"))
uri = f"models:/{{name}}/{{version}}"
model = mlflow.pytorch.load_model(uri)
noise = mlflow.models.get_model_info(uri).metadata["noise"]
z = torch.randn(7, noise["dim"]) * noise["scale"]
x = model(z)
print(tuple(x.shape), float(x.min()) >= 0.0, float(x.max()) <= 1.0)
"""
    env = {**os.environ, "MLFLOW_TRACKING_URI": default_tracking_uri(tracked_search.root)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "(7, 64) True True"


def test_sample_writes_a_png_grid(tracked_search, tmp_path):
    out = tmp_path / "grid.png"
    args = ["sample", "--results-dir", str(tracked_search.root), "--rank", "2", "-n", "10"]
    assert main([*args, "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.width > 8 * 4 and image.height > 8 * 3  # a 4 x 3 grid of 8x8 digits


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rank", "99", "--out", "x.npy"], "--rank 99: no such configuration; rank 1: run "),
        (["--run-id", "0123abc", "--out", "x.npy"], "0123abc"),
        (["--out", "x.txt"], "--out x.txt: write .npy (the samples) or .png"),
        (["-n", "0", "--out", "x.npy"], "-n must be >= 1, got 0"),
        (["--experiment", "nope", "--out", "x.npy"], "--experiment nope: no finished search"),
    ],
)
def test_bad_sample_arguments_are_clear(tracked_search, capsys, extra, message):
    assert main(["sample", "--results-dir", str(tracked_search.root), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
