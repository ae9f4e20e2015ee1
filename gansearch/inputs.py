"""Opening a file the user names (a configuration, a search space, samples): only a regular
file is read, and never more bytes than the reader allows.

A size taken from `stat` says nothing for a device (`/dev/zero` reports 0 bytes and never ends)
and opening a FIFO blocks until someone writes to it, so the kind of file is checked before it is
opened, opened without blocking in case it was swapped in between, and checked again on the open
descriptor. A symbolic link to a regular file is followed.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from gansearch.errors import GansearchError, UsageError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a file of this `st_mode` is, in words: `a FIFO`, `a character device`, ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def _check_regular(source: str, mode: int, error: type[GansearchError]) -> None:
    if not stat.S_ISREG(mode):
        raise error(f"{source}: not a regular file ({file_kind(mode)})")


def open_regular(
    path: str | os.PathLike[str], error: type[GansearchError] = UsageError
) -> BinaryIO:
    """`path` opened for binary reading; `error` naming the file when it is missing, cannot be
    read, or is not a regular file (a device, a FIFO, a directory, a socket)."""
    source = str(path)
    try:
        _check_regular(source, os.stat(path).st_mode, error)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)  # O_NONBLOCK: a FIFO swapped in after the check cannot block
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{source}: no such file") from None
    except OSError as exc:
        raise error(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        _check_regular(source, os.fstat(fd).st_mode, error)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(
    path: str | os.PathLike[str],
    limit: int,
    what: str,
    error: type[GansearchError] = UsageError,
) -> bytes:
    """The bytes of the regular file `path`, reading at most `limit` + 1 of them; `error` when it
    holds more than `limit` (`what` names what the file was meant to be: "a configuration")."""
    source = str(path)
    with open_regular(path, error) as f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise error(f"{source}: cannot read: {exc.strerror or exc}") from None
        if len(data) > limit:
            size = max(os.fstat(f.fileno()).st_size, len(data))
            held = f"{size:,} bytes" if size > limit + 1 else f"more than {limit:,} bytes"
            raise error(f"{source}: {held}: too large for {what} (at most {_size(limit)})")
    return data


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"
