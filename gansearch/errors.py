"""Errors that the command line turns into a clear message and a non-zero exit code.

Every error a user can cause (bad input, missing data, a bad configuration) is a subclass of
:class:`GansearchError`; the CLI prints its message without a traceback.
"""

from __future__ import annotations


class GansearchError(Exception):
    """Base class for errors reported to the user as one clear message."""

    exit_code: int = 1


class UsageError(GansearchError):
    """Bad input given by the user: a bad file, option or value (exit code 2)."""

    exit_code = 2


class DataError(GansearchError):
    """A data set is missing, truncated, corrupt or cannot be downloaded."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration or search-space file is malformed; the message names file and key."""


class DivergenceError(GansearchError):
    """Training produced NaN or Inf; never reported as a number."""

    exit_code = 3


class SearchError(GansearchError):
    """The search cannot start or continue (cluster, resources, experiment directory)."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type's name when it has none): what
    a one-line error message quotes of a library's multi-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
