"""The local Ray instance of a search, started in a session (and process group) of its own.

A driver that ran `ray.init()` itself would share its process group with every Ray process it
spawns, so a signal to the group (`timeout`, `kill -- -PGID`) would kill Ray under the driver
while the driver tries to stop the trials and write their results. Instead the driver starts a
keeper (this file run as a script) with `start_new_session`: the keeper starts the
local Ray (its processes are the keeper's children, in its session), prints the GCS address, and
shuts Ray down when its standard input closes: when the driver stops it, or when the driver dies,
however it dies. The driver joins that address with `ray.init(address=...)`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO

START_SECONDS = 180.0  # for the keeper to start Ray (about 10 s on a busy 2-core machine)
STOP_SECONDS = 30.0  # for the keeper to shut Ray down once told to
ADDRESS_PREFIX = "gcs-address "  # the keeper's one line on its standard output
# Runs this file's `main` without adding its directory to sys.path (its module names would
# shadow others) and without importing the gansearch package.
KEEPER = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


@dataclass
class LocalRay:
    """A running keeper and the GCS address of the Ray instance it holds."""

    process: subprocess.Popen
    address: str
    errors: IO[bytes]  # the keeper's standard error: Ray's own messages

    @classmethod
    def start(cls, env: dict[str, str] | None = None) -> LocalRay:
        """Start the keeper and wait for its address; Ctrl-C while waiting stops it."""
        errors = tempfile.TemporaryFile()  # read back if the keeper fails
        process = subprocess.Popen(
            # The file itself, not `-m gansearch.search.local_ray`: importing the package
            # imports the whole search stack (Tune, MLflow, torch), seconds the keeper needs not.
            [sys.executable, "-c", KEEPER, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env={k: v for k, v in (env or os.environ).items() if k != "RAY_ADDRESS"},
            start_new_session=True,  # a signal to the driver's group does not reach Ray
        )
        try:
            address = _read_address(process, START_SECONDS)
        except BaseException:
            _stop(process)
            errors.close()
            raise
        if address is None:
            _stop(process)
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
            errors.close()
            raise RuntimeError(lines[-1] if lines else f"exit status {process.returncode}")
        return cls(process, address, errors)

    def stop(self) -> None:
        """Shut the instance down (the keeper runs ray.shutdown) and wait for it."""
        _stop(self.process)
        self.errors.close()


def _read_address(process: subprocess.Popen, seconds: float) -> str | None:
    """The address the keeper prints, or None when it exits (or says nothing) in time."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if not ready:
            if process.poll() is not None:
                return None
            continue
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            return None  # the keeper closed its output: it failed
        line += chunk
        if b"\n" in line:
            text = line.split(b"\n", 1)[0].decode(errors="replace")
            return text.removeprefix(ADDRESS_PREFIX) if text.startswith(ADDRESS_PREFIX) else None
    return None


def _stop(process: subprocess.Popen) -> None:
    """Close the keeper's input (it shuts Ray down and exits); kill it if it does not."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()  # its Ray processes share its fate (Ray sets PR_SET_PDEATHSIG)
        process.wait()


def main() -> int:
    """The keeper: start a local Ray, print its address, shut it down when stdin closes."""
    import ray

    context = ray.init(
        address="local",  # a new instance, never one that `ray start` left recorded
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    print(f"{ADDRESS_PREFIX}{context.address_info['gcs_address']}", flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
