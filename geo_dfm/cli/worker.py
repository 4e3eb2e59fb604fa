"""`geo-dfm worker`: a long-lived job server speaking JSON lines (used by the QGIS plugin).

Requests, one JSON object per line on stdin (protocol 2):

``{"id": "j1", "job": "localize", "params": {"scene": "s.tif", "queries": ["water"], "output": "out"}}``
                                                                           queue a registered job
``{"id": "j1", "argv": ["localize", "scene.tif", "water", "-o", "out"]}``  queue a CLI command (protocol 1)
``{"cancel": "j1"}``                                                       stop that job
``{"shutdown": true}``                                                     cancel everything, exit

``params`` are the job's parameter names (:mod:`geo_dfm.jobs.registry`; nested ``chips`` and ``model``
objects). A request that cannot be handled gets an ``error`` event and the worker carries on; a cancel
of an unknown id is answered with an ``error`` event (code 2).

At the end of stdin the worker finishes the queued jobs, then exits.

Replies on stdout are the events of :mod:`geo_dfm.progress`, each carrying ``"job": <id>``:
``start``, ``stage``, ``progress``, ``log`` and finally ``result`` or ``error`` (code 2 bad input,
1 internal error, 130 cancelled). The first line is ``{"event": "ready", "version": ...,
"torch": ..., "cuda": ..., "protocol": 2, "jobs": {name: {"summary", "params": [field...]}},
"presets": {name: [labels]}, "models": [names], "model_info": [...]}``. Jobs run one after another in the same process, so models loaded by
:func:`geo_dfm.models.factory.load_encoder` stay loaded between jobs. Stdout carries only these
JSON lines: anything else a job prints goes to stderr (or, for commands that print their result
instead of reporting a summary, into the ``stdout`` field of their ``result`` event).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click

import geo_dfm
from geo_dfm.errors import EXIT_CANCELLED, EXIT_INTERNAL, InputError, exit_status
from geo_dfm.progress import JsonlProgress, ProgressLogHandler

PROTOCOL_VERSION = 2
#: Commands a worker request may not run (a worker inside the worker would read our stdin).
REFUSED_COMMANDS = frozenset({"worker"})


@dataclass(frozen=True)
class JobRequest:
    """One queued job: its id, either CLI arguments (``argv``) or a registered ``job`` with its
    ``params``, and the event that cancels it."""

    id: str | int
    argv: tuple[str, ...] = ()
    job: str | None = None
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    cancel_event: threading.Event = field(default_factory=threading.Event, compare=False)

    @property
    def command(self) -> str:
        if self.job is not None:
            return self.job
        return next((arg for arg in self.argv if not arg.startswith("-")), "")


class _JobProgress(JsonlProgress):
    """JSON-lines progress that remembers whether the job already reported its outcome."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.finished = False

    def result(self, summary: dict[str, Any]) -> None:
        self.finished = True
        super().result(summary)

    def error(self, code: int, message: str) -> None:
        self.finished = True
        super().error(code, message)


class LockedStream:
    """A text stream whose ``write`` calls never interleave (each event is written in one call)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            written = self._stream.write(text)
            self._stream.flush()
            return written

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()


class EventWriter:
    """Writes protocol lines that are not tied to a running job (thread-safe)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def environment_info() -> dict[str, Any]:
    """What the ``ready`` event reports: versions, CUDA availability and registered models."""
    from geo_dfm import __version__

    info: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "version": __version__,
        "python": sys.executable,
        "package": str(Path(geo_dfm.__file__).resolve().parent),
        "pid": os.getpid(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = bool(torch.cuda.is_available())
    except ImportError as exc:  # reported, not fatal: the settings check shows it
        info["torch"] = None
        info["cuda"] = False
        info["torch_error"] = str(exc)
    from geo_dfm.jobs.model_jobs import model_info
    from geo_dfm.jobs.registry import describe_jobs
    from geo_dfm.models.presets import get_label_preset, list_label_presets

    info["model_info"] = model_info()
    info["models"] = [entry["name"] for entry in info["model_info"]]
    info["presets"] = {name: list(get_label_preset(name)) for name in list_label_presets()}
    info["jobs"] = describe_jobs()
    return info


def _run_argv(group: click.Group, request: JobRequest, printed: io.StringIO) -> None:
    if request.command in REFUSED_COMMANDS:
        raise InputError("argv", f"{request.command!r} cannot run inside a worker")
    with contextlib.redirect_stdout(printed):
        group.main(args=list(request.argv), prog_name="geo-dfm", standalone_mode=False)


def _run_registered(request: JobRequest, progress: _JobProgress) -> None:
    from geo_dfm.jobs.registry import get_job

    entry = get_job(request.job or "")
    summary = entry.run(entry.make_params(request.params), progress)
    progress.result(summary)


def run_request(group: click.Group, request: JobRequest, out: TextIO) -> int:
    """Run one job (a registered job, or CLI arguments through the click commands); always ends with
    ``result`` or ``error``. Returns the job's exit code (0 ok, 1 internal, 2 bad input, 130 cancelled).
    """
    from geo_dfm.cli.runner import use_progress

    progress = _JobProgress(stream=out, cancel_event=request.cancel_event, job=request.id)
    progress.start(request.command)
    printed = io.StringIO()
    handler = ProgressLogHandler(progress) if request.job is not None else None
    if handler:  # argv jobs get this from run_job; registered jobs need it here
        logging.getLogger().addHandler(handler)
    code, message = 0, ""
    try:
        progress.check_cancelled()
        with use_progress(progress):
            if request.job is not None:
                _run_registered(request, progress)
            else:
                _run_argv(group, request, printed)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        code, message = exc.exit_code, exc.format_message()
    except click.Abort:
        code, message = EXIT_CANCELLED, "aborted"
    except (Exception, KeyboardInterrupt) as exc:
        code, message = exit_status(exc)
    finally:
        if handler:
            logging.getLogger().removeHandler(handler)
    if not progress.finished:
        if code == 0:
            # A command that prints its answer (e.g. `models list --json`) instead of a summary.
            progress.emit("result", summary=None, stdout=printed.getvalue())
        else:
            progress.error(code, message or f"exit code {code}")
    elif printed.getvalue():
        sys.stderr.write(printed.getvalue())
    return code


def parse_request(line: str) -> dict[str, Any]:
    """One request line as a JSON object (``ValueError`` otherwise)."""
    request = json.loads(line)
    if not isinstance(request, dict):
        raise ValueError("a request must be a JSON object")
    return request


def _job_id(value: Any) -> str | int | None:
    """A usable job id: a string or an integer (JSON numbers that are whole), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        return value
    return None


class Worker:
    """Reads requests, runs jobs one at a time on a job thread, writes events."""

    def __init__(self, group: click.Group, out: TextIO) -> None:
        self.group = group
        self.out = out if isinstance(out, LockedStream) else LockedStream(out)
        self.events = EventWriter(self.out)
        self._queue: queue.Queue[JobRequest | None] = queue.Queue()
        self._jobs: dict[str | int, JobRequest] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run_jobs, name="geo-dfm-jobs", daemon=True)

    def serve(self, requests: TextIO) -> None:
        """Handle request lines, then wait for the job thread.

        ``shutdown`` cancels the running and queued jobs; the end of input lets them finish.
        """
        self._thread.start()
        try:
            for line in requests:
                if line.strip() and not self.handle(line):
                    self.cancel_all()
                    break
        except BaseException:  # e.g. Ctrl-C: stop the jobs, then re-raise
            self.cancel_all()
            raise
        finally:
            self._queue.put(None)
            self._thread.join()

    def handle(self, line: str) -> bool:
        """Handle one request line; returns False on ``shutdown``. Never raises: a request that cannot
        be handled is answered with an ``error`` event."""
        try:
            return self._handle(line)
        except Exception as exc:  # a bug in handling one request must not kill the queue
            self.events.emit("error", job=None, code=EXIT_INTERNAL, message=f"internal error: {exc}")
            return True

    def _handle(self, line: str) -> bool:
        try:
            request = parse_request(line)
        except ValueError as exc:
            self.events.emit("error", job=None, code=2, message=f"bad request {line.strip()[:200]!r}: {exc}")
            return True
        if request.get("shutdown"):
            return False
        if "cancel" in request:
            self.cancel(request["cancel"])
            return True
        job_id = _job_id(request.get("id"))
        job = self._make_request(job_id, request)
        if job is None:
            return True
        with self._lock:
            if job_id in self._jobs:
                self.events.emit("error", job=job_id, code=2, message=f"job id {job_id!r} is already in use")
                return True
            self._jobs[job.id] = job
        self._queue.put(job)
        return True

    def _make_request(self, job_id: str | int | None, request: dict[str, Any]) -> JobRequest | None:
        """The queued form of a job request, or ``None`` after answering a bad one with an error."""
        argv, job, params = request.get("argv"), request.get("job"), request.get("params", {})
        shown = request.get("id") if job_id is None else job_id
        if job_id is None:
            problem = "a job needs an 'id' (string or integer)"
        elif job is not None and argv is not None:
            problem = "give either 'job' or 'argv', not both"
        elif job is not None:
            if not isinstance(job, str) or not isinstance(params, dict):
                problem = "'job' must be a job name and 'params' an object"
            else:
                return JobRequest(job_id, job=job, params=params)
        elif isinstance(argv, list) and all(isinstance(a, str) for a in argv):
            return JobRequest(job_id, argv=tuple(argv))
        else:
            problem = "a job needs an 'id' and an 'argv' list of strings (or 'job' and 'params')"
        self.events.emit("error", job=shown if _job_id(shown) is not None else None, code=2, message=problem)
        return None

    def cancel(self, job_id: Any) -> None:
        """Set the cancel event of a queued or running job; an unknown id gets an ``error`` event."""
        key = _job_id(job_id)
        with self._lock:
            job = self._jobs.get(key) if key is not None else None
        if job is None:
            self.events.emit(
                "error",
                job=key,
                code=2,
                message=f"cancel: no queued or running job with id {json.dumps(job_id, default=str)}",
            )
            return
        job.cancel_event.set()

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel_event.set()

    def _run_jobs(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                run_request(self.group, job, self.out)
            finally:
                with self._lock:
                    self._jobs.pop(job.id, None)


def _protocol_stream() -> TextIO:
    """Keep the real stdout for the protocol and point file descriptor 1 at stderr.

    Whatever a library prints — from Python or from C — then lands on stderr, never in the protocol.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0, closefd=False), write_through=True)
    return io.TextIOWrapper(os.fdopen(protocol_fd, "wb"), encoding="utf-8", line_buffering=True)


@click.command(name="worker")
def worker() -> None:
    """Serve jobs given as JSON lines on stdin; events as JSON lines on stdout.

    Example request: {"id": "j1", "argv": ["localize", "scene.tif", "water", "-o", "out"]}
    """
    from geo_dfm.cli.main import cli

    out = LockedStream(_protocol_stream())
    events = EventWriter(out)
    events.emit("ready", **environment_info())
    Worker(cli, out).serve(sys.stdin)
    events.emit("shutdown")
