"""Ray Tune's saved state of a search: which files a resume loads, signing them as Ray writes
them, and checking them before `--resume` lets Ray load them.

Loading this state runs code: in Ray 2.60 `Tuner.restore` unpickles tuner.pkl, and the resumed
run loads the newest experiment_state-*.json (JSON that embeds cloudpickled trials; Tune's
controller and ExperimentAnalysis read it), search_gen_state-*.json and basic-variant-state-*.json
(cloudpickles despite their name: the searcher's wrappers), searcher-state-*.pkl (OptunaSearch's
study), callback-states-*.pkl (the callbacks), and a failed trial's <trial>/error.pkl (the result
grid). So gansearch signs every such file with this user's key (gansearch.signing) and resumes
only when each one is signed and unchanged, or when the user vouches for them (--trust-state).

Tune writes that state (all but tuner.pkl) into its driver staging folder first, from its
controller loop, and a background thread copies the folder into the experiment directory. The
files are signed there, from the loop (TrialEvents' step and end hooks), as soon as Ray wrote
them, so that the copies already have a signature when they arrive: a driver killed at any
moment leaves signed state (the last few versions of each file stay signed). tuner.pkl is
written once, into the experiment directory, when a new search's Tuner is made.
"""

from __future__ import annotations

import fnmatch
import json
import os
import pickletools
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gansearch.errors import SearchError, UsageError, first_line
from gansearch.signing import NOT_SIGNED, Signatures

TUNER_FILE = "tuner.pkl"
# Top-level files Ray unpickles on a resume; hidden ones are Ray's temporary files, never loaded.
PICKLED_STATE = ("*.pkl", "search_gen_state-*.json", "basic-variant-state-*.json")
JSON_STATE = ("experiment_state-*.json",)  # JSON whose values are cloudpickles
TRIAL_STATE = ("error.pkl",)  # in each trial directory
READERS = "`gansearch report`, `ui`, `sample` and `curves` read no pickles"
RECENT_NS = 2_000_000_000  # a file changed this recently is hashed again even if it looks same


def state_files(directory: Path) -> list[str]:
    """The paths (relative to `directory`) of the files of Ray's state that a resume loads."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            if _matches(entry.name, PICKLED_STATE + JSON_STATE):
                found.append(entry.name)
        elif entry.is_dir(follow_symlinks=False):
            found += [
                f"{entry.name}/{name}"
                for name in TRIAL_STATE
                if os.path.lexists(os.path.join(entry.path, name))
            ]
    return found


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def damage(path: Path) -> str | None:
    """Why Ray could not load the state file at `path` (cut short, not a pickle, not JSON), read
    without running it; None when it looks whole."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read: {exc.strerror or type(exc).__name__}"
    if not data:
        return "is empty"
    if _matches(path.name, JSON_STATE):
        try:
            state = json.loads(data)
        except ValueError as exc:
            return f"is not valid JSON ({first_line(exc)})"
        return None if isinstance(state, dict) else "is not the JSON object Ray wrote"
    try:
        for _ in pickletools.genops(data):
            pass
    except ValueError as exc:
        cause = str(exc)
        if "exhausted" in cause or "expected" in cause:
            return f"is cut short ({len(data)} bytes): {cause}"
        return f"is not a pickle ({cause})"
    return None


def refusal(path: Path, why: str) -> str:
    """The message that refuses to resume from an unsigned or changed state file."""
    origin = (
        "it was not written by your gansearch (copied from elsewhere, or saved by a gansearch "
        "that did not sign its state)"
        if why == NOT_SIGNED
        else "it was altered after your gansearch wrote it"
    )
    return (
        f"--resume: {path} {why}: {origin}. Resuming loads Ray's saved state, which is a pickle "
        f"and runs code, so gansearch loads only the state it wrote itself. {READERS}, and "
        "still work on this experiment. If you trust where it came from, resume with "
        "--resume --trust-state: that signs its state as yours and goes on"
    )


def check_state(signatures: Signatures, trust: bool, say: Callable[[str], None]) -> None:
    """Before a resume: every state file Ray would load must be signed by this user and
    unchanged (with `trust`, the user vouches for them and they are signed now), and whole."""
    directory = signatures.directory
    files = state_files(directory)
    if trust:
        for relpath in files:
            signatures.sign(relpath)
        signatures.save()
        say(f"--trust-state: signed {len(files)} files of Ray's state in {directory} as yours")
    else:
        for relpath in files:
            why = signatures.problem(relpath)
            if why is not None:
                raise UsageError(refusal(directory / relpath, why))
    for relpath in files:
        cause = damage(directory / relpath)
        if cause is not None:
            raise SearchError(damaged(directory / relpath, cause))


def damaged(path: Path, cause: str) -> str:
    """The message of a resume that cannot read Ray's saved state."""
    return (
        f"--resume: {path} {cause}; Ray cannot restore the search from it (a disk or copy "
        f"error?). {READERS} and still show what the search finished; a new search "
        "(another --name) starts afresh"
    )


def restore_failed(experiment_dir: Path, exc: BaseException) -> str:
    """The message of a resume whose Tuner.restore failed on state that looked whole."""
    return damaged(experiment_dir / TUNER_FILE, f"cannot be restored ({first_line(exc)})")


class StateSigner:
    """Signs Ray's state of one search as it is written: tuner.pkl in place, the rest in Tune's
    driver staging folder, under the names its copies get in the experiment directory.

    Runs in the driver's Tune loop (through TrialEvents). A failure to write the signatures
    is said once and does not stop the search: resuming it then needs --trust-state.
    """

    def __init__(self, signatures: Signatures, say: Callable[[str], None]) -> None:
        self.signatures = signatures
        self.say = say
        self.staging: Path | None = None
        self._seen: dict[str, tuple[tuple[int, ...], int]] = {}
        self._warned = False

    def sign_in_place(self, relpaths: Iterable[str]) -> None:
        """Sign files of the experiment directory this process has just written."""
        self._guarded(lambda: [self.signatures.sign(r) for r in relpaths])

    def after_step(self, trials: list[Any]) -> None:
        """Sign what Ray saved in its staging folder since the last call (its location is the
        trials' `local_experiment_path`)."""
        for trial in trials:
            path = getattr(trial, "local_experiment_path", None)
            if path:
                self.staging = Path(path)
                break
        self.sign_staged()

    def sign_staged(self) -> None:
        """Sign the state files in the staging folder that changed since they were signed."""
        if self.staging is not None:
            self._guarded(self._sign_staged)

    def _sign_staged(self) -> None:
        now = time.time_ns()
        for relpath in state_files(self.staging):
            source = self.staging / relpath
            try:
                info = source.stat()
            except FileNotFoundError:
                continue
            mark = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            seen = self._seen.get(relpath)
            if seen is not None and seen[0] == mark and seen[1] - info.st_mtime_ns > RECENT_NS:
                continue
            self.signatures.sign(relpath, source=source)
            self._seen[relpath] = (mark, now)

    def _guarded(self, sign: Callable[[], object]) -> None:
        try:
            sign()
            self.signatures.save()
        except OSError as exc:
            if not self._warned:
                self._warned = True
                self.say(
                    f"cannot sign Ray's saved state in {self.signatures.directory} "
                    f"({exc.strerror or first_line(exc)}): resuming this search will need "
                    "--trust-state"
                )
