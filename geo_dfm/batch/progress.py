"""The overall progress of a batch run: scenes done and failed, chips per second, time left.

One :class:`~geo_dfm.progress.Progress` stage, ``annotate scenes``, advances by one per finished scene
(the bar shows scenes, their rate and the ETA). After each scene a status goes out with ``done``,
``failed``, ``total`` (this run's scenes), ``skipped`` (finished by an earlier run), ``chips``,
``chips_per_s`` and ``eta_s``: as a ``{"event": "scenes", ...}`` line with ``--progress jsonl`` (the
QGIS plugin reads it), and as an INFO log line otherwise (``-v``). A failed scene is a WARNING.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from geo_dfm.batch.journal import SceneRecord
from geo_dfm.progress import Progress

log = logging.getLogger(__name__)

STAGE = "annotate scenes"


class BatchProgress:
    """Counts finished scenes of a run and reports them to ``progress``."""

    def __init__(self, progress: Progress, total: int, skipped: int = 0) -> None:
        self.progress = progress
        self.total, self.skipped = total, skipped
        self.done = self.failed = self.chips = 0
        self._start = time.monotonic()
        progress.stage(STAGE, total=total)

    def status(self) -> dict[str, Any]:
        """The counts so far, the chip rate (this run) and the estimated seconds left."""
        elapsed = max(time.monotonic() - self._start, 1e-9)
        finished = self.done + self.failed
        left = self.total - finished
        return {
            "done": self.done,
            "failed": self.failed,
            "total": self.total,
            "skipped": self.skipped,
            "chips": self.chips,
            "chips_per_s": round(self.chips / elapsed, 2),
            "eta_s": round(elapsed / finished * left, 1) if finished else None,
        }

    def finished(self, record: SceneRecord) -> None:
        """Count ``record`` and report; raises :class:`~geo_dfm.errors.JobCancelled` if cancelled."""
        if record.done:
            self.done += 1
        else:
            self.failed += 1
            log.warning("scene %s failed: %s", record.scene, record.error)
        self.chips += record.chips
        status = self.status()
        emit = getattr(self.progress, "emit", None)
        if callable(emit):
            emit("scenes", scene=record.scene, status=record.status, **status)
        else:
            log.info(
                "%d/%d scenes done, %d failed, %.1f chips/s, ETA %s",
                status["done"] + status["failed"], self.total, status["failed"], status["chips_per_s"],
                "-" if status["eta_s"] is None else f"{status['eta_s']:.0f} s",
            )  # fmt: skip
        self.progress.advance(1)
