"""Runs a job from a CLI command: progress reporting, the JSON-lines protocol, error events, flags.

A job is ``fn(progress) -> summary dict``. :func:`run_job` picks the reporter from ``--progress``,
emits ``start``/``result``/``error`` events, prints the summary with ``--json``, and lets exceptions
propagate so :func:`geo_dfm.cli.main.main` sets the exit code (:func:`geo_dfm.errors.exit_status`).
Library errors name parameters (``chip_size``); :func:`flag_error` renames them after the command's
own flags (``--chip-size``) so the user reads what to change. A worker supplies its own reporter with
:func:`use_progress`. :func:`run_registered` runs a job of :mod:`geo_dfm.jobs.registry` from the
command's options.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import click

from geo_dfm.errors import InputError, exit_status
from geo_dfm.progress import JsonlProgress, Progress, ProgressLogHandler, make_progress

_supplied_progress: ContextVar[Progress | None] = ContextVar("geo_dfm_supplied_progress", default=None)

#: Parameters (dotted paths) whose command-line option has another name.
OPTION_ALIASES = {"model.name": "model_name", "index": "index_path"}
#: Parameter names that library errors use for an option of another name.
FLAG_ALIASES = {**OPTION_ALIASES, "model": "model_name"}


@contextmanager
def use_progress(progress: Progress) -> Iterator[None]:
    """Make jobs started in this context report to ``progress`` (used by the worker)."""
    token = _supplied_progress.set(progress)
    try:
        yield
    finally:
        _supplied_progress.reset(token)


def _flag_names(command: click.Command) -> dict[str, str]:
    """Option/argument name → what the user typed for it (``--chip-size``, ``SCENE``)."""
    names: dict[str, str] = {}
    for parameter in command.params:
        if parameter.name is None:
            continue
        if isinstance(parameter, click.Option):
            longs = [opt for opt in parameter.opts if opt.startswith("--")]
            names[parameter.name] = (longs or parameter.opts)[0]
        elif isinstance(parameter, click.Argument):
            names[parameter.name] = parameter.human_readable_name
    return names


def flag_for(source: str, command: click.Command | None) -> str:
    """The command-line spelling of a library parameter name (``chips.chip_size`` → ``--chip-size``)."""
    if command is None:
        return source
    names = _flag_names(command)
    for candidate in (source, FLAG_ALIASES.get(source), source.rpartition(".")[2]):
        if candidate and candidate in names:
            return names[candidate]
    return source


def flag_error(exc: InputError) -> InputError:
    """``exc`` with its source renamed after the running command's flag (the same object if unchanged)."""
    ctx = click.get_current_context(silent=True)
    if exc.source is None or ctx is None:
        return exc
    names = _flag_names(ctx.command)
    flag = flag_for(exc.source, ctx.command)
    # the problem text may name parameters too ("raise max_chips"): spell them as flags
    problem = re.sub(
        r"(?<![\w-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w-])",
        lambda m: (
            names.get(m.group(1), m.group(1)) if names.get(m.group(1), "").startswith("--") else m.group(1)
        ),
        exc.problem,
    )
    if flag == exc.source and problem == exc.problem:
        return exc
    renamed = type(exc).__new__(type(exc))
    InputError.__init__(renamed, flag, problem)
    return renamed


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
        renamed = flag_error(exc)
        progress.error(*exit_status(renamed))
        if renamed is exc:
            raise
        raise renamed from exc
    except (Exception, KeyboardInterrupt) as exc:
        progress.error(*exit_status(exc))
        raise
    finally:
        progress.close()
        if handler:
            logging.getLogger().removeHandler(handler)
    progress.result(summary)
    if print_json and not jsonl:
        click.echo(json.dumps(summary, indent=2, default=str))
    return summary


def run_registered(
    name: str,
    options: Mapping[str, Any],
    aliases: Mapping[str, str] | None = None,
    **values: Any,
) -> dict[str, Any]:
    """Run the registered job ``name`` with parameters built from a command's ``options`` (and
    ``values``, which win), reporting as ``options["progress_mode"]`` / ``options["print_json"]`` say."""
    from geo_dfm.jobs.params import params_from_options
    from geo_dfm.jobs.registry import get_job

    entry = get_job(name)
    flat = {**options, **values}

    def job(progress: Progress) -> dict[str, Any]:
        params = params_from_options(entry.params, flat, {**OPTION_ALIASES, **(aliases or {})})
        return entry.run(params, progress)

    return run_job(name, job, options.get("progress_mode", "auto"), bool(options.get("print_json")))
