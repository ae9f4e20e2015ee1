"""How a search's driver stops: Ctrl-C and SIGTERM end it the same clean way.

Ray Tune stops a run gracefully on the first SIGINT (it saves the experiment state, the trials
stop, `Tuner.fit` returns) and then puts back the handler it found. gansearch installs its own
handler first, so that

- SIGTERM (what `timeout`, systemd, Kubernetes and batch schedulers send) does what Ctrl-C does;
- a second Ctrl-C while the search is being stopped, or while its results are written, only
  says so: the results are still written; a third abandons them. The presses are counted from
  the first, which Tune's handler takes (a SIGTERM counts as a press);
- before the trials start (data, Ray, MLflow), Ctrl-C aborts at once: nothing is lost.

The exit status says which signal stopped the search: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

ABANDON_AFTER = 3  # stop signals (Ctrl-C presses, the first included) that abandon the results


@dataclass
class StopSignals:
    """What the driver has been asked to do; read by the run command for its exit status."""

    received: int | None = None  # the first stop signal (signal.SIGINT or signal.SIGTERM)
    presses: int = 0  # stop signals since the trials started, the one Tune's handler took included
    stopping: bool = False  # the trials are running (Tune stops them) or have ended

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process a signal ended."""
        return 128 + int(self.received or signal.SIGINT)


@contextmanager
def stop_signals(say: Callable[[str], None]) -> Iterator[StopSignals]:
    """Handle SIGINT and SIGTERM in the driver for the duration of the block (main thread only)."""
    state = StopSignals()

    def on_int(signum: int, frame: FrameType | None) -> None:
        if not state.stopping:
            state.received = state.received or signum
            raise KeyboardInterrupt  # nothing has started that could be saved
        if state.received is None:
            # Once the trials have started, Tune's handler stands in front of this one and
            # puts it back when it takes a press: a press that reaches here unseen is not the
            # first.
            state.presses += 1
        state.received = state.received or signum
        state.presses += 1
        if state.presses >= ABANDON_AFTER:
            raise KeyboardInterrupt
        left = ABANDON_AFTER - state.presses
        say(
            "already stopping: the trials' state and the results are being written "
            f"(press Ctrl-C {left} more time{'s' if left > 1 else ''} to abandon them)"
        )

    def on_term(signum: int, frame: FrameType | None) -> None:
        handler: Any = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not on_int:
            state.received = state.received or signum
            state.presses += 1
            handler(signal.SIGINT, frame)  # Ray Tune's: stop the trials, keep their state
        else:
            on_int(signum, frame)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    try:
        yield state
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
