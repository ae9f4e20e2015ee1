"""How a trial ended, in words: the rule behind every status gansearch shows."""

from __future__ import annotations

import pytest

from gansearch.outcomes import trial_outcome


@pytest.mark.parametrize("status", ["failed", "diverged"])
def test_trial_outcome_reads_the_trials_own_verdict(status):
    result = {status: 1, "error": "why", "epoch": 3}
    assert trial_outcome(result, None, 10) == (status, "why")


def test_an_error_fails_and_a_full_run_finishes_else_it_stopped_early():
    assert trial_outcome({"epoch": 10}, None, 10) == ("finished", "")
    assert trial_outcome({"epoch": 4}, None, 10) == ("stopped early", "")
    status, reason = trial_outcome({"epoch": 4}, "Traceback ...\nRuntimeError: boom\n", 10)
    assert (status, reason) == ("failed", "RuntimeError: boom")
