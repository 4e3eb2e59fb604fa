"""Errors of geo-dfm and the one mapping from an exception to an exit status.

Bad input is :class:`tile_tools.errors.InputError` (exit code 2). Every front end (the CLI, the
worker, the batch engine) turns exceptions into codes and one-line messages with
:func:`exit_status`, so the codes mean the same everywhere: 0 ok, 1 internal error (a bug of ours,
e.g. a ``ValueError`` about shapes), 2 bad input or an unusable environment (missing weights, a full
disk, an unwritable output), 130 cancelled (Ctrl-C, SIGTERM, a cancel request).
"""

from __future__ import annotations

import errno
from typing import NamedTuple

from tile_tools.errors import InputError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130

#: OS errors that mean "the machine cannot do this", not "geo-dfm has a bug".
_ENVIRONMENT_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}
_PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


class JobCancelled(Exception):
    """Raised inside a job when its caller asked it to stop (cancel request, SIGINT, SIGTERM)."""


class WeightsNotFoundError(InputError):
    """Model weights are not available locally (and cannot be downloaded now)."""


class ExitStatus(NamedTuple):
    """What a front end reports for an outcome: the exit ``code`` and a one-line ``message``."""

    code: int
    message: str


def exit_status(exc: BaseException | None) -> ExitStatus:
    """The exit status for a job that ended with ``exc`` (``None``: success)."""
    if exc is None:
        return ExitStatus(EXIT_OK, "")
    if isinstance(exc, InputError):
        return ExitStatus(EXIT_BAD_INPUT, str(exc))
    if isinstance(exc, (JobCancelled, KeyboardInterrupt)):
        return ExitStatus(EXIT_CANCELLED, "cancelled")
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f" while writing {exc.filename}" if exc.filename else ""
        return ExitStatus(EXIT_BAD_INPUT, f"{_ENVIRONMENT_ERRNOS[exc.errno]}{where}")
    if isinstance(exc, OSError) and exc.errno in _PERMISSION_ERRNOS and exc.filename:
        return ExitStatus(EXIT_BAD_INPUT, f"{exc.filename}: permission denied ({exc.strerror})")
    return ExitStatus(EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CANCELLED",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "ExitStatus",
    "InputError",
    "JobCancelled",
    "WeightsNotFoundError",
    "exit_status",
]
