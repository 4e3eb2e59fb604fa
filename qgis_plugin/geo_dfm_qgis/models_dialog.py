"""Model manager: the registry with download state, background download with cancel, the default model."""

from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from geo_dfm_qgis import settings
from geo_dfm_qgis.capabilities import Capabilities, ModelInfo
from geo_dfm_qgis.i18n import tr
from geo_dfm_qgis.task import ModelDownloadTask, ModelListTask, WorkerHolder, WorkerTask

COLUMNS = (
    "Name",
    "Downloaded",
    "Default",
    "Architecture",
    "Family",
    "Input",
    "Dense",
    "Licence",
    "Description",
)


def _yes_no(value: bool | None) -> str:
    return tr("?") if value is None else (tr("yes") if value else tr("no"))


class ModelsDialog(QDialog):
    """Lists the models geo-dfm registers; downloads one in the worker; sets the plugin's default."""

    def __init__(self, workers: WorkerHolder, parent=None, refresh: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("geo-dfm models"))
        self.setObjectName("GeoDfmModelsDialog")
        self.workers = workers
        self.capabilities: Capabilities = settings.capabilities()
        self.task: WorkerTask | None = None
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("models")
        self.table.setHorizontalHeaderLabels([tr(c) for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.status = QLabel(self)
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("progress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.refresh_button = self._button("refresh", tr("Refresh"), tr("Ask geo-dfm again"), self.refresh)
        self.download_button = self._button(
            "download", tr("Download"), tr("Download the selected model (Hugging Face cache)"), self.download
        )
        self.cancel_button = self._button("cancel", tr("Cancel"), tr("Stop the download"), self.cancel)
        self.default_button = self._button(
            "default",
            tr("Set as default"),
            tr("Use the selected model when none is chosen"),
            self.set_default,
        )
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        row = QHBoxLayout()
        for button in (self.refresh_button, self.download_button, self.cancel_button, self.default_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(close)
        self.resize(860, 380)
        self.show_models(self.capabilities.models)
        if refresh:
            self.refresh()

    def _button(self, name: str, text: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    # --- table --------------------------------------------------------------------------------
    def show_models(self, models: tuple[ModelInfo, ...]) -> None:
        selected = self.selected_model()
        default = settings.default_model()
        self.table.setRowCount(len(models))
        for row, info in enumerate(models):
            values = (
                info.name,
                _yes_no(info.downloaded),
                tr("yes") if info.name == default else "",
                info.architecture,
                info.family,
                str(info.input_size or ""),
                _yes_no(info.dense) if info.architecture else "",
                info.licence,
                info.description,
            )
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(info.description or info.name)
                self.table.setItem(row, column, item)
            if info.name == selected:
                self.table.selectRow(row)
        self.table.resizeColumnsToContents()
        self._update_buttons()

    def selected_model(self) -> str:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.table.item(rows[0].row(), 0).text() if rows else ""

    def select(self, name: str) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() == name:
                self.table.selectRow(row)

    def _update_buttons(self) -> None:
        busy = self.task is not None
        info = self.capabilities.model(self.selected_model())
        self.refresh_button.setEnabled(not busy)
        self.download_button.setEnabled(not busy and info is not None and info.downloaded is not True)
        self.cancel_button.setEnabled(isinstance(self.task, ModelDownloadTask))
        self.default_button.setEnabled(info is not None)

    # --- actions ------------------------------------------------------------------------------
    def refresh(self) -> None:
        self._start(ModelListTask(self.workers), tr("Asking geo-dfm for its models…"))

    def download(self) -> None:
        name = self.selected_model()
        if name:
            self._start(ModelDownloadTask(name, self.workers), tr("Downloading {name}…").format(name=name))

    def cancel(self) -> None:
        if self.task is not None:
            self.status.setText(tr("Cancelling…"))
            self.task.cancel()

    def set_default(self) -> None:
        name = self.selected_model()
        if name:
            settings.write(settings.DEFAULT_MODEL_KEY, name)
            self.status.setText(tr("{name} is the default model.").format(name=name))
            self.show_models(self.capabilities.models)

    def _start(self, task: WorkerTask, message: str) -> None:
        if self.task is not None:
            return
        self.task = task
        task.ended.connect(self._ended)
        self.progress.setRange(0, 0)  # busy: downloads report no fraction
        self.status.setText(message)
        self._update_buttons()
        QgsApplication.taskManager().addTask(task)

    def _ended(self, success: bool) -> None:
        task, self.task = self.task, None
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if success else 0)
        if task is None:
            return
        if success and task.capabilities is not None:
            self.capabilities = task.capabilities
            settings.store_capabilities(self.capabilities)
            self.show_models(self.capabilities.models)
            if isinstance(task, ModelDownloadTask):
                self.status.setText(tr("{name} downloaded.").format(name=task.model_name))
            else:
                self.status.setText(tr("{n} models.").format(n=len(self.capabilities.models)))
        elif task.isCanceled():
            self.status.setText(tr("Cancelled."))
        else:
            self.status.setText(tr("Failed: {message}").format(message=task.error_message))
        self._update_buttons()

    def reject(self) -> None:
        if self.task is not None:
            self.task.cancel()
        super().reject()
