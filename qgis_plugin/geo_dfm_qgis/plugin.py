"""The plugin object QGIS loads: menu/toolbar actions, the dock panel, the Processing provider."""

from __future__ import annotations

import os

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from geo_dfm_qgis.processing_provider.provider import GeoDfmProvider
from geo_dfm_qgis.task import WorkerHolder

MENU = "&geo-dfm"
ICON = os.path.join(os.path.dirname(__file__), "icon.png")


class GeoDfmPlugin:
    """Creates everything in ``initGui``/``initProcessing`` and removes all of it in ``unload``."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: GeoDfmProvider | None = None
        self.dock = None
        self.actions: list[QAction] = []
        self.workers = WorkerHolder()

    def initProcessing(self) -> None:
        self.provider = GeoDfmProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        from geo_dfm_qgis.dock import GeoDfmDock

        self.dock = GeoDfmDock(self.iface, self.workers, self.iface.mainWindow())
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        panel = QAction(QIcon(ICON), "geo-dfm panel", self.iface.mainWindow())
        panel.setObjectName("geo_dfm_panel_action")
        panel.setCheckable(True)
        panel.toggled.connect(self.dock.setUserVisible)
        self.dock.visibilityChanged.connect(panel.setChecked)
        settings_action = QAction("geo-dfm settings…", self.iface.mainWindow())
        settings_action.setObjectName("geo_dfm_settings_action")
        settings_action.triggered.connect(self.show_settings)
        for action in (panel, settings_action):
            self.iface.addPluginToMenu(MENU, action)
            self.actions.append(action)
        self.iface.addToolBarIcon(panel)

    def show_settings(self) -> None:
        from geo_dfm_qgis.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.iface.mainWindow())
        if dialog.exec():
            self.workers.shutdown()  # the next run starts the newly chosen environment

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
            self.iface.removeToolBarIcon(action)
            action.deleteLater()
        self.actions = []
        if self.dock is not None:
            if self.dock.task is not None:
                self.dock.task.cancel()
            self.dock.save_state()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        self.workers.shutdown()
