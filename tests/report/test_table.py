"""Table 1 (gansearch.report.table): rows say when they are not comparable with the paper's."""

from __future__ import annotations

import pytest

from gansearch.report import comparability

pytestmark = pytest.mark.slow


def test_rows_say_when_they_are_not_comparable_with_the_papers_columns():
    assert comparability("mnist", None) is None
    assert "TFD fold 2 only" in comparability("tfd", 2)
    assert comparability("digits", None) == "digits: not comparable with the paper's columns"
