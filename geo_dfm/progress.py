"""Progress reporting for long jobs: a terminal bar, JSON lines for other programs, or nothing.

Jobs talk to one :class:`Progress` object; they never print. The JSON-lines form is the
machine-readable protocol used by ``--progress jsonl`` and by the QGIS plugin's worker. Each
line on stdout is one JSON object with an ``event`` key:

``{"event": "start", "command": "localize"}``
``{"event": "stage", "stage": "encode images", "total": 120}``
``{"event": "progress", "stage": "encode images", "done": 40, "total": 120, "fraction": 0.333}``
``{"event": "log", "level": "WARNING", "message": "..."}``
``{"event": "result", "summary": {...}}``        (last event of a successful job)
``{"event": "error", "code": 2, "message": "..."}``  (last event of a failed job; 2 bad input,
1 internal error, 130 cancelled)

A worker adds ``"job": <id>`` to every event of a job.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

from geo_dfm.errors import JobCancelled

PROGRESS_MODES = ("auto", "bar", "jsonl", "none")


class Progress:
    """Receives a job's stages, progress, logs and outcome. The base class reports nothing."""

    def __init__(self, cancel_event: threading.Event | None = None) -> None:
        self.cancel_event = cancel_event or threading.Event()
        self.stage_name: str | None = None
        self.total: int | None = None
        self.done = 0

    # --- what jobs call -------------------------------------------------------------------
    def stage(self, name: str, total: int | None = None) -> None:
        """Start a new stage of ``total`` steps (``None`` if unknown)."""
        self.check_cancelled()
        self.stage_name, self.total, self.done = name, total, 0
        self._on_stage()

    def advance(self, n: int = 1) -> None:
        """Record ``n`` finished steps of the current stage; raises if cancelled."""
        self.done += n
        self._on_advance()
        self.check_cancelled()

    def set_total(self, total: int) -> None:
        """Set the current stage's total once it becomes known."""
        self.total = total

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` when the caller asked the job to stop."""
        if self.cancel_event.is_set():
            raise JobCancelled("cancelled")

    def log(self, level: str, message: str) -> None:
        """Report a log message (called by :class:`ProgressLogHandler`)."""

    def result(self, summary: dict[str, Any]) -> None:
        """Report the job's summary (last call of a successful job)."""

    def error(self, code: int, message: str) -> None:
        """Report the job's failure (last call of a failed job)."""

    def close(self) -> None:
        """Release the display."""

    # --- for subclasses -------------------------------------------------------------------
    def _on_stage(self) -> None:
        pass

    def _on_advance(self) -> None:
        pass


class BarProgress(Progress):
    """A tqdm bar per stage on stderr."""

    def __init__(self, cancel_event: threading.Event | None = None, stream: TextIO | None = None) -> None:
        super().__init__(cancel_event)
        self._stream = stream or sys.stderr
        self._bar = None

    def _on_stage(self) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(
            total=self.total, desc=self.stage_name, file=self._stream, leave=False, dynamic_ncols=True
        )

    def _on_advance(self) -> None:
        if self._bar is not None:
            if self.total is not None and self._bar.total != self.total:
                self._bar.total = self.total
            self._bar.n = self.done
            self._bar.refresh()

    def note(self, **figures: float) -> None:
        """Show per-step figures (the trainer's loss and images/s) beside the current bar."""
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in figures.items()}, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class JsonlProgress(Progress):
    """Writes the JSON-lines protocol described in this module's docstring."""

    def __init__(
        self,
        stream: TextIO | None = None,
        cancel_event: threading.Event | None = None,
        job: str | int | None = None,
        min_interval: float = 0.2,
    ) -> None:
        super().__init__(cancel_event)
        self._stream = stream or sys.stdout
        self._job = job
        self._lock = threading.Lock()
        self._min_interval = min_interval
        self._last_emit = 0.0

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event line (thread-safe) and flush."""
        record: dict[str, Any] = {"event": event}
        if self._job is not None:
            record["job"] = self._job
        record.update(fields)
        line = json.dumps(record, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def start(self, command: str) -> None:
        self.emit("start", command=command)

    def _on_stage(self) -> None:
        self._last_emit = 0.0
        self.emit("stage", stage=self.stage_name, total=self.total)

    def _on_advance(self) -> None:
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if finished or now - self._last_emit >= self._min_interval:
            self._last_emit = now
            fraction = None if not self.total else round(min(1.0, self.done / self.total), 4)
            self.emit("progress", stage=self.stage_name, done=self.done, total=self.total, fraction=fraction)

    def log(self, level: str, message: str) -> None:
        self.emit("log", level=level, message=message)

    def result(self, summary: dict[str, Any]) -> None:
        self.emit("result", summary=summary)

    def error(self, code: int, message: str) -> None:
        self.emit("error", code=code, message=message)


class ProgressLogHandler(logging.Handler):
    """Routes log records to a :class:`Progress` (e.g. as JSON ``log`` events)."""

    def __init__(self, progress: Progress, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.progress.log(record.levelname, record.getMessage())
        except Exception:  # a broken pipe must not kill the job from inside logging
            self.handleError(record)


def make_progress(mode: str = "auto", cancel_event: threading.Event | None = None) -> Progress:
    """Build the reporter for a ``--progress`` mode: auto (bar on a terminal), bar, jsonl, none."""
    if mode not in PROGRESS_MODES:
        raise ValueError(f"unknown progress mode {mode!r}; choose from {', '.join(PROGRESS_MODES)}")
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "none"
    if mode == "bar":
        return BarProgress(cancel_event)
    if mode == "jsonl":
        return JsonlProgress(cancel_event=cancel_event)
    return Progress(cancel_event)
