"""Background tasks that talk to the session's geo-dfm worker: a panel run (adds the result layers)
and model downloads.

``run()`` (a task thread) only talks to the geo-dfm process; the project and the GUI are touched only
in ``finished()`` and in slots of the signals (the GUI thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from qgis.core import QgsMapLayer, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from geo_dfm_qgis import settings
from geo_dfm_qgis.capabilities import Capabilities
from geo_dfm_qgis.i18n import tr
from geo_dfm_qgis.jobs import JobCall, JobSpec, ModelChoice, download_model_call
from geo_dfm_qgis.layers import add_result_group, result_group
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


def missing_model(client: WorkerClient, model: ModelChoice) -> str:
    """The registry name of ``model`` when its weights are not on this machine ('' otherwise).

    Custom weights, open_clip architectures and models the worker does not list are not checked.
    """
    if model.weights:
        return ""
    caps = client.capabilities
    name = model.name or next((m.name for m in caps.models if m.default), "")
    info = caps.model(name)
    if info is not None and info.downloaded is None:  # protocol 1: ask `models list --json`
        client.refresh_models()
        info = client.capabilities.model(name)
    return name if info is not None and info.downloaded is False else ""


class WorkerTask(QgsTask):
    """Runs :class:`JobCall` s through the worker one after another; stops at the first failure."""

    eventReceived = pyqtSignal(object)  # every protocol event, for a log
    capabilitiesReceived = pyqtSignal(object)  # Capabilities, once the worker said ready
    ended = pyqtSignal(bool)  # emitted at the end of finished(): True when every call succeeded

    def __init__(
        self, title: str, calls: Sequence[JobCall], workers: WorkerHolder, refresh_models: bool = False
    ) -> None:
        super().__init__(title, QgsTask.Flag.CanCancel)
        self.calls = list(calls)
        self.workers = workers
        self.refresh_models = refresh_models
        self.outcomes: list[tuple[JobCall, JobOutcome]] = []
        self.error_message = ""
        self.capabilities: Capabilities | None = None  # the worker's, at the end of run()

    def preflight(self, client: WorkerClient) -> str:
        """A reason not to run the calls (checked once the worker is up); '' to go on."""
        return ""

    def run(self) -> bool:
        try:
            client = self.workers.client()
            client.start()
            self.capabilitiesReceived.emit(client.capabilities)
            problem = self.preflight(client)
            if problem:
                self.error_message = problem
                return False
            for index, call in enumerate(self.calls):
                if self.isCanceled():
                    return False

                def on_event(event: dict[str, Any], index: int = index) -> None:
                    if event.get("event") == "progress" and event.get("fraction") is not None:
                        self.setProgress(100.0 * (index + float(event["fraction"])) / len(self.calls))
                    self.eventReceived.emit(event)

                outcome = client.run(call, on_event=on_event, is_cancelled=self.isCanceled)
                self.outcomes.append((call, outcome))
                if not outcome.ok:
                    self.error_message = outcome.message
                    return False
            if self.refresh_models:
                client.refresh_models()
            self.capabilities = client.capabilities
        except WorkerError as exc:
            self.error_message = str(exc)
            return False
        return True

    def succeeded(self, result: bool) -> bool:
        return bool(result and not self.isCanceled())

    def finished(self, result: bool) -> None:
        self.ended.emit(self.succeeded(result))


class GeoDfmTask(WorkerTask):
    """A panel run: checks the model is present, runs the job, adds the styled result layers."""

    def __init__(self, spec: JobSpec, workers: WorkerHolder, title: str = "") -> None:
        super().__init__(title or f"geo-dfm {spec.mode}", spec.calls(), workers)
        self.spec = spec
        self.missing_model = ""
        self.added_layers: list[QgsMapLayer] = []

    def preflight(self, client: WorkerClient) -> str:
        self.missing_model = missing_model(client, self.spec.model)
        if self.missing_model:
            return tr("The model {name} is not downloaded yet.").format(name=self.missing_model)
        return ""

    @property
    def adapter(self) -> str:
        """The adapter folder a successful fine-tune wrote ('' for other jobs)."""
        for call, outcome in self.outcomes:
            if call.job == "finetune" and outcome.ok:
                outputs = (outcome.summary or {}).get("outputs") or {}
                return str(outputs.get("adapter") or call.params.get("output") or "")
        return ""

    @property
    def base_model(self) -> str:
        """The model a fine-tune started from, as geo-dfm names it ('' when unknown)."""
        for call, outcome in self.outcomes:
            if call.job == "finetune" and outcome.ok:
                return str(((outcome.summary or {}).get("model") or {}).get("name") or self.spec.model.name)
        return ""

    def finished(self, result: bool) -> None:
        if self.succeeded(result):
            for call, outcome in self.outcomes:
                title = f"geo-dfm {call.job}: {call.title}"
                group = result_group(call.job, title, outcome.summary or {})
                self.added_layers += add_result_group(group)
        super().finished(result)


class ModelDownloadTask(WorkerTask):
    """Downloads one registered model in the worker (Hugging Face cache), cancellable; then reads
    the registry's download state again (:attr:`capabilities`)."""

    def __init__(self, name: str, workers: WorkerHolder) -> None:
        super().__init__(
            tr("geo-dfm: download {name}").format(name=name),
            [download_model_call(name)],
            workers,
            refresh_models=True,
        )
        self.model_name = name


class ModelListTask(WorkerTask):
    """Reads the registry with download state (:attr:`capabilities`) without blocking the GUI."""

    def __init__(self, workers: WorkerHolder) -> None:
        super().__init__(tr("geo-dfm: list models"), [], workers, refresh_models=True)
