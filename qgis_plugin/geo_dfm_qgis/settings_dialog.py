"""Settings dialog: which Python environment runs geo-dfm (chosen, or set up with one click), its check,
a diagnostics report for the clipboard, the output folder, and the model manager."""

from __future__ import annotations

import os

from qgis.core import QgsApplication, QgsTask
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from geo_dfm_qgis import settings
from geo_dfm_qgis.diagnostics import diagnostics_report
from geo_dfm_qgis.environment import INSTALL_HELP, candidate_paths
from geo_dfm_qgis.i18n import tr
from geo_dfm_qgis.setup_env import (
    SetupError,
    SetupRequest,
    SetupResult,
    SetupRunner,
    SetupStep,
    default_base_python,
    detect_gpu,
    plan_setup,
)

TORCH_CHOICES = (
    ("auto", "Automatic (CUDA build if an NVIDIA driver is found)"),
    ("cpu", "CPU build"),
    ("cuda", "CUDA build"),
    ("skip", "Do not install torch"),
)


class SetupTask(QgsTask):
    """Runs the environment set-up in the background; the dialog shows its steps and output."""

    lineReceived = pyqtSignal(str)
    stepStarted = pyqtSignal(int, int, str)  # index, number of steps, title
    ended = pyqtSignal(object)  # SetupResult

    def __init__(self, request: SetupRequest) -> None:
        super().__init__(tr("geo-dfm: set up the environment"), QgsTask.Flag.CanCancel)
        self.request = request
        self.result: SetupResult | None = None
        self.runner: SetupRunner | None = None

    def run(self) -> bool:
        try:
            plan = plan_setup(
                self.request, gpu=detect_gpu() if self.request.torch in ("auto", "cuda") else None
            )
        except SetupError as exc:
            self.result = SetupResult(False, message=str(exc))
            return False
        self.runner = SetupRunner(plan, self.lineReceived.emit, self._on_step, check=_check)
        if self.isCanceled():
            self.runner.cancel()
        self.result = self.runner.run()
        return self.result.ok

    def _on_step(self, index: int, step: SetupStep) -> None:
        steps = len(self.runner.plan.steps) if self.runner else 1
        self.setProgress(100.0 * index / steps)
        self.stepStarted.emit(index, steps, step.title)

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
        super().cancel()

    def finished(self, result: bool) -> None:
        self.ended.emit(
            self.result or SetupResult(False, cancelled=self.isCanceled(), message=tr("set-up stopped"))
        )


def _check(target: str) -> tuple[bool, str]:
    report = settings.check_environment(target)
    return report.ok, report.message


class SettingsDialog(QDialog):
    """Choose the geo-dfm environment (auto-detected, any path, or set up here), check it, copy a
    diagnostics report, pick the output folder, open the model manager."""

    def __init__(self, parent=None, workers=None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.setup_task: SetupTask | None = None
        self.last_check: tuple[str, settings.EnvironmentReport] | None = None
        self.setWindowTitle(tr("geo-dfm settings"))
        self.setObjectName("GeoDfmSettingsDialog")
        self.environment = QComboBox(self)
        self.environment.setEditable(True)
        self.environment.setObjectName("environment")
        self.environment.setToolTip(
            tr("A geo-dfm executable, a Python with geo-dfm installed, or a venv folder")
        )
        for path in candidate_paths():
            self.environment.addItem(path)
        self.environment.setEditText(
            settings.read(settings.ENVIRONMENT_KEY, "") or self.environment.currentText()
        )
        self.browse = QgsFileWidget(self)
        self.browse.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.browse.setToolTip(tr("Pick the geo-dfm executable or its Python"))
        self.browse.fileChanged.connect(self.environment.setEditText)
        self.output_folder = QgsFileWidget(self)
        self.output_folder.setObjectName("output_folder")
        self.output_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output_folder.setFilePath(settings.output_folder())
        self.output_folder.setToolTip(tr("Where the panel's runs write their output folders"))
        self.check_button = QPushButton(tr("Check environment"), self)
        self.check_button.setObjectName("check")
        self.check_button.setToolTip(tr("Start geo-dfm from the chosen environment and say what it finds"))
        self.check_button.clicked.connect(self.check)
        self.diagnostics_button = QPushButton(tr("Copy diagnostics"), self)
        self.diagnostics_button.setObjectName("diagnostics")
        self.diagnostics_button.setToolTip(
            tr("Copy a report (QGIS, Python, geo-dfm, torch, CUDA, GPU, paths) to the clipboard")
        )
        self.diagnostics_button.clicked.connect(self.copy_diagnostics)
        self.models_button = QPushButton(tr("Models…"), self)
        self.models_button.setObjectName("models")
        self.models_button.setToolTip(tr("List, download and choose the default model"))
        self.models_button.clicked.connect(self.show_models)
        self.report = QPlainTextEdit(self)
        self.report.setObjectName("report")
        self.report.setReadOnly(True)
        self.report.setPlainText(INSTALL_HELP)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow(tr("geo-dfm environment"), self.environment)
        form.addRow("", self.browse)
        form.addRow(tr("Output folder"), self.output_folder)
        row = QHBoxLayout()
        for button in (self.check_button, self.diagnostics_button, self.models_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(self._setup_box())
        layout.addWidget(QLabel(tr("Environment check"), self))
        layout.addWidget(self.report)
        layout.addWidget(buttons)
        self.resize(640, 640)

    def _setup_box(self) -> QGroupBox:
        box = QGroupBox(tr("Set up geo-dfm (a new environment outside QGIS)"), self)
        form = QFormLayout(box)
        self.setup_target = QgsFileWidget(box)
        self.setup_target.setObjectName("setup_target")
        self.setup_target.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.setup_target.setFilePath(os.path.join(os.path.expanduser("~"), "geo-dfm-env"))
        self.setup_target.setToolTip(tr("A new (or empty) folder for the environment"))
        form.addRow(tr("New environment"), self.setup_target)
        self.setup_source = QgsFileWidget(box)
        self.setup_source.setObjectName("setup_source")
        self.setup_source.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.setup_source.setFilter(tr("Wheels (*.whl);;All files (*)"))
        self.setup_source.setToolTip(tr("A geo-dfm wheel or checkout folder; empty = the package index"))
        form.addRow(tr("Install geo-dfm from"), self.setup_source)
        self.setup_torch = QComboBox(box)
        self.setup_torch.setObjectName("setup_torch")
        for value, text in TORCH_CHOICES:
            self.setup_torch.addItem(tr(text), value)
        self.setup_torch.setToolTip(tr("Which torch build to install"))
        form.addRow(tr("torch"), self.setup_torch)
        self.setup_python = QLineEdit(default_base_python(), box)
        self.setup_python.setObjectName("setup_python")
        self.setup_python.setToolTip(tr("The Python 3.10+ the environment is made from (uv may fetch one)"))
        form.addRow(tr("Python"), self.setup_python)
        self.setup_reuse = QLineEdit(box)
        self.setup_reuse.setObjectName("setup_reuse")
        self.setup_reuse.setToolTip(
            tr("Advanced: site-packages folders of an environment that already has torch (separated by ;)")
        )
        form.addRow(tr("Reuse packages from"), self.setup_reuse)
        self.setup_offline = QCheckBox(tr("Offline: install only from local files"), box)
        self.setup_offline.setObjectName("setup_offline")
        self.setup_offline.setToolTip(
            tr("No package index; dependencies must come from 'Reuse packages from'")
        )
        form.addRow("", self.setup_offline)
        row = QHBoxLayout()
        self.setup_button = QPushButton(tr("Set up geo-dfm"), box)
        self.setup_button.setObjectName("setup")
        self.setup_button.setToolTip(tr("Create the environment, install torch and geo-dfm, then check it"))
        self.setup_button.clicked.connect(self.start_setup)
        self.setup_cancel = QPushButton(tr("Cancel set-up"), box)
        self.setup_cancel.setObjectName("setup_cancel")
        self.setup_cancel.setEnabled(False)
        self.setup_cancel.clicked.connect(self.cancel_setup)
        row.addWidget(self.setup_button)
        row.addWidget(self.setup_cancel)
        form.addRow(row)
        self.setup_progress = QProgressBar(box)
        self.setup_progress.setObjectName("setup_progress")
        self.setup_progress.setRange(0, 100)
        self.setup_progress.setValue(0)
        form.addRow(self.setup_progress)
        self.setup_log = QPlainTextEdit(box)
        self.setup_log.setObjectName("setup_log")
        self.setup_log.setReadOnly(True)
        self.setup_log.setMaximumBlockCount(5000)
        self.setup_log.setMinimumHeight(80)
        form.addRow(self.setup_log)
        return box

    # --- environment ------------------------------------------------------------------------------
    def check(self) -> settings.EnvironmentReport:
        """Run the chosen environment and show what was found (blocks briefly with a wait cursor)."""
        path = self.environment.currentText().strip()
        self.report.setPlainText(tr("Starting geo-dfm…"))
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            QApplication.processEvents()
            report = settings.check_environment(path)
        finally:
            QApplication.restoreOverrideCursor()
        self.report.setPlainText(report.message)
        self.last_check = (path, report)
        return report

    def copy_diagnostics(self) -> str:
        """Put the diagnostics report on the clipboard (and show it), checking the environment first
        unless it was just checked."""
        path = self.environment.currentText().strip()
        checked_path, report = self.last_check or ("", None)
        if report is None or checked_path != path:
            report = self.check()
        text = diagnostics_report(path, report.info, "" if report.ok else report.message.splitlines()[0])
        QApplication.clipboard().setText(text)
        self.report.setPlainText(text + "\n\n" + tr("(copied to the clipboard)"))
        return text

    def show_models(self) -> None:
        from geo_dfm_qgis.models_dialog import ModelsDialog
        from geo_dfm_qgis.task import WorkerHolder

        ModelsDialog(self.workers or WorkerHolder(), self).exec()

    # --- set-up -------------------------------------------------------------------------------------
    def setup_request(self) -> SetupRequest:
        reuse = tuple(p.strip() for p in self.setup_reuse.text().split(";") if p.strip())
        return SetupRequest(
            target=self.setup_target.filePath().strip(),
            source=self.setup_source.filePath().strip(),
            base_python=self.setup_python.text().strip(),
            torch=self.setup_torch.currentData(),
            offline=self.setup_offline.isChecked(),
            reuse_site_packages=reuse,
        )

    def start_setup(self) -> None:
        if self.setup_task is not None:
            return
        request = self.setup_request()
        if not request.target:
            self.setup_log.appendPlainText(tr("Choose a folder for the new environment."))
            return
        self.setup_log.clear()
        self.setup_progress.setValue(0)
        task = SetupTask(request)
        task.lineReceived.connect(self.setup_log.appendPlainText)
        task.stepStarted.connect(self._setup_step)
        task.ended.connect(self._setup_ended)
        self.setup_task = task
        self.setup_button.setEnabled(False)
        self.setup_cancel.setEnabled(True)
        QgsApplication.taskManager().addTask(task)

    def cancel_setup(self) -> None:
        if self.setup_task is not None:
            self.setup_log.appendPlainText(tr("Cancelling…"))
            self.setup_task.cancel()

    def _setup_step(self, index: int, steps: int, title: str) -> None:
        self.setup_progress.setValue(int(100 * index / max(1, steps)))
        self.setup_progress.setFormat(f"{index + 1}/{steps} {title}")

    def _setup_ended(self, result: SetupResult) -> None:
        task, self.setup_task = self.setup_task, None
        self.setup_button.setEnabled(True)
        self.setup_cancel.setEnabled(False)
        self.setup_log.appendPlainText(result.message)
        if result.ok and task is not None:
            self.setup_progress.setValue(100)
            self.setup_progress.setFormat(tr("done"))
            self.environment.setEditText(task.request.target)
            settings.write(settings.ENVIRONMENT_KEY, task.request.target)
            self.report.setPlainText(result.check or result.message)
        else:
            self.setup_progress.setValue(0)
            self.setup_progress.setFormat(tr("cancelled") if result.cancelled else tr("failed"))

    def accept(self) -> None:
        settings.write(settings.ENVIRONMENT_KEY, self.environment.currentText().strip())
        settings.write(settings.OUTPUT_FOLDER_KEY, self.output_folder.filePath())
        super().accept()

    def reject(self) -> None:
        self.cancel_setup()
        super().reject()
