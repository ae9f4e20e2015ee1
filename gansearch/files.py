"""Files gansearch writes, and whom it trusts to have written them.

Writes are atomic (a reader sees the old file or the new one, never half of either) or appends;
neither follows a symbolic link, so a link planted where gansearch writes cannot aim its writes
at another file. Every atomic writer gets its own temporary name beside the target (process id
and a random part), so two processes writing the same file at once cannot share, or delete,
each other's temporary file. `foreign_writer` says why someone other than this user could have
written a file or directory (its owner, or write permission for its group or other users).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from gansearch.errors import UsageError

NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC  # the flags of every file gansearch opens to write


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write in the target's folder; it replaces `path` when the block ends
    without an error and is removed when it raises. The folder is created if missing. The
    replacement renames over `path`: a symbolic link there is replaced, never followed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        # O_EXCL: a new file, never one (or a link) that was already at the temporary name.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o666)
        with open(fd, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def open_append(path: str | os.PathLike[str]) -> TextIO:
    """`path` opened to append UTF-8 text (created if missing); a UsageError naming it when it
    is a symbolic link, which is never followed: it could point at any file of this user."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NO_FOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise UsageError(refused_link(Path(path))) from None
        raise
    return open(fd, "a", encoding="utf-8")


def refused_link(path: Path) -> str:
    """The message that refuses to write through the symbolic link `path`."""
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return (
        f"{path} is a symbolic link{target}; gansearch writes its own files and never through "
        "a link, which could point at any file of yours: remove the link (the file it points "
        "at was not changed)"
    )


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON object as a line (values JSON cannot hold are written as text)."""
    with open_append(path) as f:
        f.write(json.dumps(record, default=str) + "\n")


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON objects of a file, one a line; a line cut short (a killed writer) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


# --------------------------------------------------------------------------- trust


def current_uid() -> int:
    """The user this process runs as: the one whose files gansearch trusts."""
    return os.getuid()


def foreign_owner(info: os.stat_result) -> str | None:
    """Why the file `info` describes is not this user's (None when it is)."""
    if info.st_uid != current_uid():
        return f"belongs to user {user_name(info.st_uid)}, not to you"
    return None


def foreign_writer(info: os.stat_result) -> str | None:
    """Why someone other than this user could have written the file or directory `info`
    describes: its owner, or write permission for its group or other users (a symbolic link's
    own permissions mean nothing: only its owner counts); None when only this user could."""
    owner = foreign_owner(info)
    if owner is not None or stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o022:
        return owner
    groups = [("its group", 0o020), ("other users", 0o002)]
    return "can be written by " + " and ".join(n for n, bit in groups if info.st_mode & bit)


def user_name(uid: int) -> str:
    """The login name of `uid` (the number where it has none)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)
