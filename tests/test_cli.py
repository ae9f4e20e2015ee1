"""The command line's entry points (gansearch.cli): the console script and `python -m`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_console_script_is_installed():
    script = shutil.which("gansearch") or pytest.fail("the gansearch console script is missing")
    result = subprocess.run([script, "parzen", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--samples" in result.stdout
    module = subprocess.run(
        [sys.executable, "-m", "gansearch.cli", "--help"], capture_output=True, text=True
    )
    assert module.returncode == 0 and "parzen" in module.stdout
