"""Settings dialog: which Python environment runs geo-dfm, with a check and install help."""

from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from geo_dfm_qgis import settings
from geo_dfm_qgis.environment import INSTALL_HELP, candidate_paths


class SettingsDialog(QDialog):
    """Choose the geo-dfm environment (auto-detected candidates or any path) and check it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("geo-dfm settings")
        self.setObjectName("GeoDfmSettingsDialog")
        self.environment = QComboBox(self)
        self.environment.setEditable(True)
        self.environment.setObjectName("environment")
        self.environment.setToolTip("A geo-dfm executable, a Python with geo-dfm installed, or a venv folder")
        for path in candidate_paths():
            self.environment.addItem(path)
        self.environment.setEditText(
            settings.read(settings.ENVIRONMENT_KEY, "") or self.environment.currentText()
        )
        self.browse = QgsFileWidget(self)
        self.browse.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.browse.fileChanged.connect(self.environment.setEditText)
        self.output_folder = QgsFileWidget(self)
        self.output_folder.setObjectName("output_folder")
        self.output_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output_folder.setFilePath(settings.output_folder())
        self.check_button = QPushButton("Check environment", self)
        self.check_button.setObjectName("check")
        self.check_button.clicked.connect(self.check)
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
        form.addRow("geo-dfm environment", self.environment)
        form.addRow("", self.browse)
        form.addRow("Output folder", self.output_folder)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.check_button)
        layout.addWidget(QLabel("Environment check", self))
        layout.addWidget(self.report)
        layout.addWidget(buttons)
        self.resize(560, 420)

    def check(self) -> settings.EnvironmentReport:
        """Run the chosen environment and show what was found (blocks briefly with a wait cursor)."""
        self.report.setPlainText("Starting geo-dfm…")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            QApplication.processEvents()
            report = settings.check_environment(self.environment.currentText().strip())
        finally:
            QApplication.restoreOverrideCursor()
        self.report.setPlainText(report.message)
        return report

    def accept(self) -> None:
        settings.write(settings.ENVIRONMENT_KEY, self.environment.currentText().strip())
        settings.write(settings.OUTPUT_FOLDER_KEY, self.output_folder.filePath())
        super().accept()
