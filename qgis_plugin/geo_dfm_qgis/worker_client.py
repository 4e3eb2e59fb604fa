"""Talking to geo-dfm over JSON lines: a long-lived ``geo-dfm worker`` and one-shot CLI runs.

Pure Python (subprocess + threads, no Qt), so it works from a ``QgsTask`` thread, from a Processing
algorithm and from ``qgis_process`` alike. Events are the dicts of geo-dfm's JSON-lines protocol
(``start``, ``stage``, ``progress``, ``log``, ``result``, ``error``).

A worker that says ``"protocol": 2`` in its ``ready`` event gets ``{"id", "job", "params"}``
requests for the jobs it describes; older workers (and jobs they do not describe) get the same
request as CLI arguments (``{"id", "argv"}``).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from geo_dfm_qgis.capabilities import Capabilities, ModelInfo
from geo_dfm_qgis.environment import IS_WINDOWS, worker_environment
from geo_dfm_qgis.jobs import JobCall, list_models_call

TERMINAL_EVENTS = ("result", "error")
CANCELLED_CODE = 130


class WorkerError(RuntimeError):
    """The geo-dfm process could not be started or stopped talking."""


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: ``summary`` on success, else ``code`` and ``message``."""

    ok: bool
    summary: dict[str, Any] | None = None
    code: int = 0
    message: str = ""
    stdout: str = ""

    @property
    def cancelled(self) -> bool:
        return self.code == CANCELLED_CODE

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> JobOutcome:
        if event.get("event") == "result":
            return cls(True, summary=event.get("summary"), stdout=event.get("stdout") or "")
        return cls(False, code=int(event.get("code", 1)), message=str(event.get("message", "")))


@dataclass
class JobHandle:
    """A submitted job: its id, the request sent, and the queue its events arrive in."""

    id: str
    request: dict[str, Any]
    events: queue.Queue = field(default_factory=queue.Queue)
    outcome: JobOutcome | None = None

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or ``None`` when none came within ``timeout`` seconds."""
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            return None
        if event.get("event") in TERMINAL_EVENTS:
            self.outcome = JobOutcome.from_event(event)
        return event


def parse_event(line: str) -> dict[str, Any] | None:
    """One protocol line as a dict, or ``None`` for anything that is not a JSON event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def request_for(job_id: str, call: JobCall | Sequence[str], capabilities: Capabilities) -> dict[str, Any]:
    """The request line for ``call``: ``job`` + ``params`` when the worker describes that job, else
    ``argv`` (a plain argument list is always sent as argv)."""
    if not isinstance(call, JobCall):
        return {"id": job_id, "argv": list(call)}
    if not capabilities.supports(call.job):
        return {"id": job_id, "argv": ["-v", *call.argv]}  # -v: geo-dfm's INFO lines reach the log
    params = dict(call.params)
    job = capabilities.jobs[call.job]
    if "preset" in params and job.field("preset") is None and job.field("labels") is not None:
        labels = capabilities.preset_labels(params["preset"])
        if labels:  # a worker whose job takes labels only: send the preset's classes
            params.pop("preset")
            params["labels"] = list(labels)
    return {"id": job_id, "job": call.job, "params": params}


def models_from_outcome(outcome: JobOutcome) -> tuple[ModelInfo, ...]:
    """The model list in a ``list-models`` summary or in ``models list --json`` output."""
    rows: Any = (outcome.summary or {}).get("models")
    if rows is None and outcome.stdout.strip():
        try:
            rows = json.loads(outcome.stdout)
        except ValueError:
            rows = None
    if not isinstance(rows, list):
        return ()
    return tuple(ModelInfo.from_dict(row) for row in rows if isinstance(row, dict) and row.get("name"))


def start_geo_dfm(command: Sequence[str], argv: Sequence[str], stdin: int) -> subprocess.Popen:
    """Start ``command argv`` (a geo-dfm executable) with line-buffered text pipes for stdout/stderr."""
    try:
        return subprocess.Popen(
            [*command, *argv],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=worker_environment(),
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
    except OSError as exc:
        raise WorkerError(f"cannot run {command[0]}: {exc}") from exc


class WorkerClient:
    """One ``geo-dfm worker`` process: start it, submit jobs, cancel them, stop it."""

    def __init__(self, command: Sequence[str], ready_timeout: float = 180.0) -> None:
        self.command = list(command)
        self.ready_timeout = ready_timeout
        self.ready_info: dict[str, Any] | None = None
        self.capabilities = Capabilities.fallback()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._process: subprocess.Popen | None = None
        self._handles: dict[str, JobHandle] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._ids = itertools.count(1)

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> dict[str, Any]:
        """Start the worker (if needed) and wait for its ``ready`` event; returns that event."""
        with self._lock:
            if not self.running:
                self._spawn()
        if not self._ready.wait(self.ready_timeout) or self.ready_info is None:
            self.kill()
            raise WorkerError(f"{' '.join(self.command)} worker did not start: {self.stderr_text()}")
        return self.ready_info

    def _spawn(self) -> None:
        self._ready.clear()
        self.ready_info = None
        process = start_geo_dfm(self.command, ["worker"], stdin=subprocess.PIPE)
        self._process = process
        stderr_reader = threading.Thread(target=self._read_stderr, args=(process,), daemon=True)
        stderr_reader.start()
        threading.Thread(target=self._read_events, args=(process, stderr_reader), daemon=True).start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Ask the worker to stop (cancelling its jobs); kill it if it does not within ``timeout``."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            self._send({"shutdown": True})
            process.wait(timeout)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        """Kill the worker process at once (its jobs end with an error event)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    # --- jobs -----------------------------------------------------------------------------
    def submit(self, call: JobCall | Sequence[str]) -> JobHandle:
        """Queue one job (a :class:`JobCall`, or the arguments after ``geo-dfm``); starts the worker
        if needed."""
        self.start()
        job_id = f"job-{next(self._ids)}"
        handle = JobHandle(id=job_id, request=request_for(job_id, call, self.capabilities))
        with self._lock:
            self._handles[handle.id] = handle
        try:
            self._send(handle.request)
        except (OSError, ValueError) as exc:
            handle.events.put({"event": "error", "job": handle.id, "code": 1, "message": str(exc)})
        return handle

    def cancel(self, handle: JobHandle) -> None:
        """Ask the worker to stop a job at its next progress step."""
        if self.running:
            with contextlib.suppress(OSError, ValueError):
                self._send({"cancel": handle.id})

    def run(
        self,
        call: JobCall | Sequence[str],
        on_event: Callable[[dict[str, Any]], None] | None = None,
        is_cancelled: Callable[[], bool] = lambda: False,
        cancel_grace: float = 10.0,
    ) -> JobOutcome:
        """Submit a job and wait for its outcome, passing every event to ``on_event``.

        When ``is_cancelled()`` turns true the job is cancelled; a job that has not stopped
        ``cancel_grace`` seconds later (at once if ``cancel_grace <= 0``) is stopped by killing the
        worker, which restarts for the next job.
        """
        handle = self.submit(call)
        cancel_sent_at: float | None = None
        while handle.outcome is None:
            if cancel_sent_at is None and is_cancelled():
                if cancel_grace > 0:
                    self.cancel(handle)
                else:
                    self.kill()
                cancel_sent_at = time.monotonic()
            elif cancel_sent_at is not None and time.monotonic() - cancel_sent_at > cancel_grace:
                self.kill()
                cancel_sent_at = float("inf")  # the reader thread now ends the job with an error
            event = handle.next_event(0.1)
            if event is not None and on_event is not None:
                on_event(event)
        with self._lock:
            self._handles.pop(handle.id, None)
        if cancel_sent_at is not None and not handle.outcome.ok:
            return JobOutcome(False, code=CANCELLED_CODE, message="cancelled")
        return handle.outcome

    def refresh_models(self) -> tuple[ModelInfo, ...]:
        """Ask the worker for the registry with download state; updates :attr:`capabilities`."""
        outcome = self.run(list_models_call())
        models = models_from_outcome(outcome) if outcome.ok else ()
        if models:
            self.capabilities = self.capabilities.with_models(models)
        return self.capabilities.models

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_tail).strip() or "(no message)"

    # --- plumbing -------------------------------------------------------------------------
    def _send(self, request: dict[str, Any]) -> None:
        process = self._process
        if process is None or process.stdin is None:
            raise WorkerError("the geo-dfm worker is not running")
        with self._lock:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()

    def _read_events(self, process: subprocess.Popen, stderr_reader: threading.Thread) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            event = parse_event(line)
            if event is None:
                self.stderr_tail.append(line.rstrip())
                continue
            if event["event"] == "ready":
                self.ready_info = event
                self.capabilities = Capabilities.from_ready(event)
                self._ready.set()
                continue
            with self._lock:
                handle = self._handles.get(str(event.get("job")))
            if handle is not None:
                handle.events.put(event)
            elif event["event"] == "error":
                self.stderr_tail.append(str(event.get("message", "")))
        process.wait()
        stderr_reader.join(5)  # its last lines explain why the worker stopped
        self._ready.set()  # wakes start() if the worker died before saying ready
        with self._lock:
            orphans = list(self._handles.values())
        for handle in orphans:
            if handle.outcome is None:
                handle.events.put(
                    {
                        "event": "error",
                        "job": handle.id,
                        "code": 1 if process.returncode != -9 else CANCELLED_CODE,
                        "message": f"the geo-dfm worker stopped (exit code {process.returncode}): "
                        f"{self.stderr_text()}",
                    }
                )

    def _read_stderr(self, process: subprocess.Popen) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.stderr_tail.append(line.rstrip())


def run_once(
    command: Sequence[str],
    argv: Sequence[str],
    on_event: Callable[[dict[str, Any]], None] | None = None,
    is_cancelled: Callable[[], bool] = lambda: False,
    cancel_grace: float = 10.0,
) -> JobOutcome:
    """Run one geo-dfm command with ``--progress jsonl`` in its own process and wait for it.

    ``argv`` must already contain ``--progress jsonl``. Cancel sends an interrupt (the command
    exits with 130 and removes its partial output), then kills after ``cancel_grace`` seconds.
    """
    stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
    process = start_geo_dfm(command, argv, stdin=subprocess.DEVNULL)
    events: queue.Queue = queue.Queue()

    def pump(stream, sink) -> None:
        for line in stream:
            sink(line)
        sink(None)

    threading.Thread(target=pump, args=(process.stdout, events.put), daemon=True).start()
    threading.Thread(
        target=pump,
        args=(process.stderr, lambda line: line and stderr_tail.append(line.rstrip())),
        daemon=True,
    ).start()
    outcome: JobOutcome | None = None
    interrupted_at: float | None = None
    while True:
        if interrupted_at is None and is_cancelled():
            if IS_WINDOWS:
                process.terminate()
            else:
                process.send_signal(signal.SIGINT)
            interrupted_at = time.monotonic()
        elif interrupted_at is not None and time.monotonic() - interrupted_at > cancel_grace:
            process.kill()
        try:
            line = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        event = parse_event(line)
        if event is None:
            stderr_tail.append(line.rstrip())
            continue
        if event["event"] in TERMINAL_EVENTS:
            outcome = JobOutcome.from_event(event)
        if on_event is not None:
            on_event(event)
    code = process.wait()
    if interrupted_at is not None:
        return JobOutcome(False, code=CANCELLED_CODE, message="cancelled")
    if outcome is None:
        message = "\n".join(stderr_tail).strip() or f"exit code {code}"
        outcome = JobOutcome(code == 0, code=code, message=message)
    elif not outcome.ok and not outcome.message:
        outcome = JobOutcome(False, code=outcome.code, message="\n".join(stderr_tail).strip())
    return outcome
