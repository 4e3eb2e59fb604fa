"""The model manager against the real worker: the registry with download state, a default, a download."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.qgis, pytest.mark.slow]


@pytest.fixture
def dialog(qgis_app, plugin_settings, wait_until, workers):
    from geo_dfm_qgis.models_dialog import ModelsDialog

    window = ModelsDialog(workers)
    window.show()
    wait_until(lambda: window.task is None, timeout=120)  # the list refresh it starts on opening
    yield window
    if window.task is not None:
        window.task.cancel()
        wait_until(lambda: window.task is None, timeout=60)
    window.deleteLater()


def rows(dialog) -> dict[str, dict[str, str]]:
    header = [dialog.table.horizontalHeaderItem(c).text() for c in range(dialog.table.columnCount())]
    table = {}
    for row in range(dialog.table.rowCount()):
        values = {header[c]: dialog.table.item(row, c).text() for c in range(len(header))}
        table[values["Name"]] = values
    return table


def test_models_are_listed_with_download_state_and_a_default_is_kept(dialog, plugin_settings):
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    from geo_dfm_qgis import settings

    table = rows(dialog)
    assert table["toy"]["Downloaded"] == "yes" and table["toy"]["Input"] == "64"
    assert any(r["Downloaded"] == "no" for r in table.values())  # nothing is downloaded on test machines
    assert all(r["Architecture"] for r in table.values())  # protocol 2 describes every model
    dialog.select("toy")
    assert not dialog.download_button.isEnabled()  # already here
    QTest.mouseClick(dialog.default_button, Qt.MouseButton.LeftButton)
    assert settings.default_model() == "toy" and rows(dialog)["toy"]["Default"] == "yes"
    assert settings.capabilities().model("toy").downloaded is True  # remembered for the next session


def test_a_download_runs_in_the_background_and_reports_why_it_failed(dialog, wait_until):
    missing = next(name for name, row in rows(dialog).items() if row["Downloaded"] == "no")
    dialog.select(missing)
    assert dialog.download_button.isEnabled()
    dialog.download()
    assert dialog.task is not None and dialog.cancel_button.isEnabled()  # cancellable while it runs
    wait_until(lambda: dialog.task is None, timeout=120)
    status = dialog.status.text()
    assert status.startswith("Failed:") and missing in status  # offline here (HF_HUB_OFFLINE=1)
    assert rows(dialog)[missing]["Downloaded"] == "no"
