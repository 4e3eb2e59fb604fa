"""Runs a job function with progress reporting, the JSON-lines protocol and error events.

A job is ``fn(progress) -> summary dict``. :func:`run_job` picks the reporter from
``--progress``, emits ``start``/``result``/``error`` events, prints the summary with
``--json``, and lets exceptions propagate so :func:`geo_dfm.cli.main.main` sets the exit code.
A worker can supply its own reporter with :func:`use_progress`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import click

from geo_dfm.errors import InputError, JobCancelled
from geo_dfm.progress import JsonlProgress, Progress, ProgressLogHandler, make_progress

_supplied_progress: ContextVar[Progress | None] = ContextVar("geo_dfm_supplied_progress", default=None)


@contextmanager
def use_progress(progress: Progress) -> Iterator[None]:
    """Make jobs started in this context report to ``progress`` (used by the worker)."""
    token = _supplied_progress.set(progress)
    try:
        yield
    finally:
        _supplied_progress.reset(token)


def run_job(
    command: str,
    job: Callable[[Progress], dict[str, Any]],
    progress_mode: str = "auto",
    print_json: bool = False,
) -> dict[str, Any]:
    """Run ``job`` and report its outcome; returns its summary."""
    supplied = _supplied_progress.get()
    progress = supplied or make_progress(progress_mode)
    jsonl = isinstance(progress, JsonlProgress)
    handler = ProgressLogHandler(progress) if jsonl else None
    if handler:
        logging.getLogger().addHandler(handler)
    if jsonl and supplied is None:
        progress.start(command)
    try:
        summary = job(progress)
    except InputError as exc:
        progress.error(2, str(exc))
        raise
    except (JobCancelled, KeyboardInterrupt):
        progress.error(130, "cancelled")
        raise
    except Exception as exc:
        progress.error(1, f"internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        progress.close()
        if handler:
            logging.getLogger().removeHandler(handler)
    progress.result(summary)
    if print_json and not jsonl:
        click.echo(json.dumps(summary, indent=2, default=str))
    return summary
