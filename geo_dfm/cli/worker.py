"""`geo-dfm worker`: a long-lived job server speaking JSON lines (used by the QGIS plugin).

Requests, one JSON object per line on stdin:

``{"id": "j1", "argv": ["localize", "scene.tif", "water", "-o", "out"]}``  queue a job
``{"cancel": "j1"}``                                                       stop that job
``{"shutdown": true}``                                                     cancel everything, exit

At the end of stdin the worker finishes the queued jobs, then exits.

Replies on stdout are the events of :mod:`geo_dfm.progress`, each carrying ``"job": <id>``:
``start``, ``stage``, ``progress``, ``log`` and finally ``result`` or ``error`` (code 2 bad input,
1 internal error, 130 cancelled). The first line is ``{"event": "ready", "version": ...,
"torch": ..., "cuda": ...}``. Jobs run one after another in the same process, so models loaded by
:func:`geo_dfm.models.factory.load_encoder` stay loaded between jobs. Stdout carries only these
JSON lines: anything else a job prints goes to stderr (or, for commands that print their result
instead of reporting a summary, into the ``stdout`` field of their ``result`` event).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

from geo_dfm.errors import InputError, JobCancelled
from geo_dfm.progress import JsonlProgress

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class JobRequest:
    """One queued job: its id, the CLI arguments and the event that cancels it."""

    id: str | int
    argv: tuple[str, ...]
    cancel_event: threading.Event = field(default_factory=threading.Event, compare=False)


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
    try:
        from geo_dfm.models.registry import list_model_specs

        info["models"] = [spec.name for spec in list_model_specs()]
    except Exception:  # the registry is optional for the protocol; the plugin has its own list
        info["models"] = None
    return info


def run_request(group: click.Group, request: JobRequest, out: TextIO) -> int:
    """Run one job through the normal click commands; always ends with ``result`` or ``error``.

    Returns the job's exit code (0 ok, 1 internal, 2 bad input, 130 cancelled).
    """
    from geo_dfm.cli.runner import use_progress

    progress = _JobProgress(stream=out, cancel_event=request.cancel_event, job=request.id)
    command = next((arg for arg in request.argv if not arg.startswith("-")), "")
    progress.start(command)
    printed = io.StringIO()
    code, message = 0, ""
    try:
        progress.check_cancelled()
        with use_progress(progress), contextlib.redirect_stdout(printed):
            group.main(args=list(request.argv), prog_name="geo-dfm", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        code, message = exc.exit_code, exc.format_message()
    except click.Abort:
        code, message = 130, "aborted"
    except InputError as exc:
        code, message = 2, str(exc)
    except (JobCancelled, KeyboardInterrupt):
        code, message = 130, "cancelled"
    except Exception as exc:
        code, message = 1, f"internal error: {type(exc).__name__}: {exc}"
    if not progress.finished:
        if code == 0:
            # A command that prints its answer (e.g. `models list --json`) instead of a summary.
            progress.emit("result", summary=None, stdout=printed.getvalue())
        else:
            progress.error(code, message or f"exit code {code}")
    elif printed.getvalue():
        sys.stderr.write(printed.getvalue())
    return code


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
        """Handle one request line; returns False on ``shutdown``."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request must be a JSON object")
        except ValueError as exc:
            self.events.emit("error", job=None, code=2, message=f"bad request {line.strip()[:200]!r}: {exc}")
            return True
        if request.get("shutdown"):
            return False
        if "cancel" in request:
            self.cancel(request["cancel"])
            return True
        job_id, argv = request.get("id"), request.get("argv")
        if job_id is None or not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            self.events.emit(
                "error", job=job_id, code=2, message="a job needs an 'id' and an 'argv' list of strings"
            )
            return True
        with self._lock:
            if job_id in self._jobs:
                self.events.emit("error", job=job_id, code=2, message=f"job id {job_id!r} is already in use")
                return True
            job = JobRequest(job_id, tuple(argv))
            self._jobs[job_id] = job
        self._queue.put(job)
        return True

    def cancel(self, job_id: str | int) -> None:
        """Set the cancel event of a queued or running job (unknown ids are ignored)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
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
