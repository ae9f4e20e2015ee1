"""One small tracked search, interrupted with Ctrl-C and resumed, that the tracking and report
tests share (conftest's `tracked_search` fixture runs it once per session).

The resumed search reports its best three configurations at the end, so the experiment holds
results.parquet, MLflow runs for every trial and a Table 1 report.
"""

from __future__ import annotations

import io
import os
import re
import signal
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from gansearch.cli import main
from gansearch.experiment import read_results
from gansearch.tracking import default_tracking_uri

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "tests" / "fixtures" / "small_space.yaml"
TRIALS = 5
NAME = "small"


class _CtrlCAfter(io.StringIO):
    """A stderr that presses Ctrl-C (SIGINT to this process) once `n` trials have ended."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.ended, self.sent = n, 0, False

    def write(self, text: str) -> int:
        self.ended += len(re.findall(r"\] trial \w+ (?:finished|stopped early) after", text))
        if self.ended >= self.n and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return super().write(text)


@dataclass
class Search:
    root: Path
    args: list[str]
    first_code: int
    first_err: str
    runs_before: dict[str, str]  # trial id -> run id after the interruption
    code: int
    out: str
    err: str

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(default_tracking_uri(self.root))

    @property
    def experiment_id(self) -> str:
        return self.client.get_experiment_by_name(NAME).experiment_id

    def runs(self, role: str) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`gansearch.role` = '{role}'"
        )

    def trial_runs(self) -> dict[str, str]:
        """Trial id -> MLflow run id."""
        return {r.data.tags["gansearch.trial_id"]: r.info.run_id for r in self.runs("trial")}

    @property
    def results(self) -> pd.DataFrame:
        return read_results(self.root / NAME)


def run_tracked_search(root: Path) -> Search:
    """Run the small search under `root`, press Ctrl-C after two trials, then resume it."""
    # A larger init range than the fixture's, so that the trials' generators differ visibly.
    space = root / f"{NAME}.yaml"
    space.write_text(
        SMALL.read_text().replace("units: [64, 64]}", "units: [64, 64], init_range: 0.1}")
    )
    args = ["run", "--space", str(space), "--results-dir", str(root), "--trials", str(TRIALS)]
    args += ["--concurrency", "2", "--progress-interval", "100"]
    err = _CtrlCAfter(2)
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        first_code = main(args)
    search = Search(root, args, first_code, err.getvalue(), {}, 0, "", "")
    search.runs_before = search.trial_runs()
    out, err2 = io.StringIO(), io.StringIO()
    with redirect_stderr(err2), redirect_stdout(out):
        search.code = main([*args, "--resume"])
    search.out, search.err = out.getvalue(), err2.getvalue()
    return search
