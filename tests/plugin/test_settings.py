"""The settings dialog finds geo-dfm, checks the environment and explains how to install it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

GEO_DFM = Path(sys.executable).parent / "geo-dfm"


def test_command_for_accepts_an_executable_a_python_or_an_environment_folder():
    from geo_dfm_qgis.environment import command_for

    venv = GEO_DFM.parent.parent
    assert command_for(str(GEO_DFM)) == [str(GEO_DFM)]
    assert command_for(str(venv)) == [str(GEO_DFM)]
    assert command_for(sys.executable) == [sys.executable, "-m", "geo_dfm"]


def test_auto_detection_finds_geo_dfm_on_path(monkeypatch):
    from geo_dfm_qgis.environment import candidate_paths

    monkeypatch.setenv("PATH", str(GEO_DFM.parent))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    assert candidate_paths()[0] == str(GEO_DFM)


@pytest.mark.slow
def test_check_button_reports_version_and_cuda(qgis_app, plugin_settings):
    import torch
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    from geo_dfm import __version__
    from geo_dfm_qgis.settings_dialog import SettingsDialog

    dialog = SettingsDialog()
    dialog.show()
    assert dialog.environment.currentText() == str(GEO_DFM)  # from the settings
    QTest.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
    cuda = "yes" if torch.cuda.is_available() else "no"
    first_line = dialog.report.toPlainText().splitlines()[0]
    assert first_line == f"geo-dfm {__version__} found, torch CUDA available: {cuda}"
    dialog.environment.setEditText("/nonexistent/bin/geo-dfm")
    dialog.accept()
    assert plugin_settings.value("geo_dfm_qgis/environment") == "/nonexistent/bin/geo-dfm"


def test_a_missing_environment_is_reported_with_install_help(qgis_app):
    from geo_dfm_qgis.settings import check_environment

    report = check_environment("/nonexistent/bin/geo-dfm")
    assert not report.ok
    assert "/nonexistent/bin/geo-dfm" in report.message
    assert "pip install geo-dfm" in report.message
