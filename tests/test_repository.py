"""The README's set-up commands are the ones CI runs, so a newcomer's first steps are tested."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_setup_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Set up", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README.md: no bash block under '## Set up'"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_install_and_test_commands():
    install, test = readme_setup_commands()
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in ci_lines if line and not line.startswith("#")]
    assert install in commands, f".ci/run does not run the README's install command {install!r}"
    assert commands[-1] == test, f".ci/run must end with the README's test command {test!r}"
    assert commands.index(install) < commands.index("ruff check .") < len(commands) - 1


def test_readme_opens_with_setup_then_the_main_command():
    readme = (REPO / "README.md").read_text()
    assert readme.index("## Set up") < readme.index(
        "gansearch run --space search_spaces/mnist.yaml"
    )
