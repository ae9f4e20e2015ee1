"""Run gansearch commands in a child process that cannot hang or exhaust memory, for tests of
inputs that never end (/dev/zero) or never begin (a FIFO): a regression fails the test instead of
blocking it, or of reading until the kernel kills the test run.

The child imports every command's module and `modules` (what commands import when they run)
first, then times each `gansearch.cli.main(args)` on its own, so a test can say how fast a
refusal is, apart from the seconds of importing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

MEMORY_LIMIT = 6 << 30  # address space: the imports reserve about 2 GiB, /dev/zero is endless
TIMEOUT_S = 60  # the imports take several seconds on a busy machine; each refusal well under 1

_CHILD = """
import contextlib, importlib, io, json, resource, sys, time
calls, modules, limit = json.loads(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for module in modules:
    importlib.import_module(module)
from gansearch.cli import build_parser, main
build_parser()  # imports every command's module
results = []
for args in calls:
    err = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    results.append({"code": code, "err": err.getvalue(), "seconds": time.monotonic() - started})
print(json.dumps(results))
"""


@dataclass(frozen=True)
class Outcome:
    """One command's exit code, standard error and seconds."""

    code: int
    err: str
    seconds: float


def run_guarded(calls: list[list[str]], modules: list[str]) -> list[Outcome]:
    """Each of `calls` (argument lists of `gansearch`) run in one child process, after importing
    the commands and `modules`; fails the test (TimeoutExpired, or the child's traceback) when
    the child hangs, runs out of memory or crashes."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps([calls, modules, MEMORY_LIMIT])],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"the child failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return [Outcome(**result) for result in json.loads(done.stdout.splitlines()[-1])]
