"""Errors of geo-dfm. Bad input is :class:`tile_tools.errors.InputError` (exit code 2)."""

from __future__ import annotations

from tile_tools.errors import InputError


class JobCancelled(Exception):
    """Raised inside a job when its caller asked it to stop."""


class WeightsNotFoundError(InputError):
    """Model weights are not available locally (and cannot be downloaded now)."""


__all__ = ["InputError", "JobCancelled", "WeightsNotFoundError"]
