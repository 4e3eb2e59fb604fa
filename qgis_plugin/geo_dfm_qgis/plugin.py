"""The plugin object QGIS loads: menu/toolbar actions, the dock panel, the Processing provider."""

from __future__ import annotations

import os

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QIcon

from geo_dfm_qgis.compat import QAction
from geo_dfm_qgis.i18n import install_translator, tr
from geo_dfm_qgis.processing_provider.provider import GeoDfmProvider
from geo_dfm_qgis.task import WorkerHolder

ICON = os.path.join(os.path.dirname(__file__), "icon.png")


class GeoDfmPlugin:
    """Creates everything in ``initGui``/``initProcessing`` and removes all of it in ``unload``."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.translator = install_translator()
        self.menu = tr("&geo-dfm")
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
        self.dock.capabilitiesChanged.connect(self.refresh_processing)
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        window = self.iface.mainWindow()
        panel = QAction(QIcon(ICON), tr("geo-dfm panel"), window)
        panel.setObjectName("geo_dfm_panel_action")
        panel.setCheckable(True)
        panel.toggled.connect(self.dock.setUserVisible)
        self.dock.visibilityChanged.connect(panel.setChecked)
        models_action = QAction(tr("geo-dfm models…"), window)
        models_action.setObjectName("geo_dfm_models_action")
        models_action.triggered.connect(self.show_models)
        settings_action = QAction(tr("geo-dfm settings…"), window)
        settings_action.setObjectName("geo_dfm_settings_action")
        settings_action.triggered.connect(self.show_settings)
        for action in (panel, models_action, settings_action):
            self.iface.addPluginToMenu(self.menu, action)
            self.actions.append(action)
        self.iface.addToolBarIcon(panel)

    def refresh_processing(self, _capabilities=None) -> None:
        """New choices from a worker: rebuild the Processing algorithms' enums."""
        if self.provider is not None:
            self.provider.refreshAlgorithms()

    def show_settings(self) -> None:
        from geo_dfm_qgis.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.iface.mainWindow(), workers=self.workers)
        if dialog.exec():
            self.workers.shutdown()  # the next run starts the newly chosen environment
            self.refresh_processing()

    def show_models(self) -> None:
        from geo_dfm_qgis.models_dialog import ModelsDialog

        dialog = ModelsDialog(self.workers, self.iface.mainWindow())
        dialog.exec()
        if self.dock is not None:
            self.dock.apply_capabilities(dialog.capabilities)
        self.refresh_processing()

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginMenu(self.menu, action)
            self.iface.removeToolBarIcon(action)
            action.deleteLater()
        self.actions = []
        if self.dock is not None:
            for task in (self.dock.task, self.dock.download_task):
                if task is not None:
                    task.cancel()
            self.dock.save_state()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        self.workers.shutdown()
        if self.translator is not None:
            QCoreApplication.removeTranslator(self.translator)
            self.translator = None
