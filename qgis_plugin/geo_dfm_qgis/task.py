"""The background task behind the panel's Run button, and the worker it talks to."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qgis.core import QgsMapLayer, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from geo_dfm_qgis import settings
from geo_dfm_qgis.jobs import JobSpec
from geo_dfm_qgis.layers import add_layer_group, result_layers
from geo_dfm_qgis.worker_client import JobOutcome, WorkerClient, WorkerError


class WorkerHolder:
    """Keeps one ``geo-dfm worker`` alive for the session (restarted if it died or the setting changed)."""

    def __init__(self, command_provider: Callable[[], list[str]] = settings.geo_dfm_command) -> None:
        self._command_provider = command_provider
        self._client: WorkerClient | None = None
        self._lock = threading.Lock()

    def client(self) -> WorkerClient:
        command = self._command_provider()
        with self._lock:
            if self._client is None or self._client.command != command:
                if self._client is not None:
                    self._client.shutdown()
                self._client = WorkerClient(command)
            return self._client

    @property
    def current(self) -> WorkerClient | None:
        return self._client

    def shutdown(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.shutdown()
                self._client = None


class GeoDfmTask(QgsTask):
    """Runs a :class:`JobSpec` through the worker; ``finished()`` adds the result layers.

    ``run()`` (a worker thread) only talks to the geo-dfm process; the project and the GUI are
    touched only in ``finished()`` (the GUI thread).
    """

    eventReceived = pyqtSignal(object)  # every protocol event, for the panel's log
    ended = pyqtSignal(bool)  # emitted at the end of finished(): True when layers were added

    def __init__(self, spec: JobSpec, workers: WorkerHolder, title: str = "") -> None:
        super().__init__(title or f"geo-dfm {spec.mode}", QgsTask.Flag.CanCancel)
        self.spec = spec
        self.workers = workers
        self.outcomes: list[tuple[str, JobOutcome]] = []
        self.error_message = ""
        self.added_layers: list[QgsMapLayer] = []
        self._runs = spec.commands()

    def run(self) -> bool:
        try:
            client = self.workers.client()
            for index, (title, argv) in enumerate(self._runs):
                if self.isCanceled():
                    return False

                def on_event(event: dict[str, Any], index: int = index) -> None:
                    if event.get("event") == "progress" and event.get("fraction") is not None:
                        self.setProgress(100.0 * (index + float(event["fraction"])) / len(self._runs))
                    self.eventReceived.emit(event)

                outcome = client.run(["-v", *argv], on_event=on_event, is_cancelled=self.isCanceled)
                self.outcomes.append((title, outcome))
                if not outcome.ok:
                    self.error_message = outcome.message
                    return False
        except WorkerError as exc:
            self.error_message = str(exc)
            return False
        return True

    def finished(self, result: bool) -> None:
        if result and not self.isCanceled():
            for title, outcome in self.outcomes:
                layers = result_layers(self.spec.mode, outcome.summary or {})
                self.added_layers += add_layer_group(f"geo-dfm {self.spec.mode}: {title}", layers)
        self.ended.emit(bool(result and not self.isCanceled()))
