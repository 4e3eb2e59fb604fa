"""The few Qt names that moved between Qt 5 (QGIS 3) and Qt 6 (QGIS 4), imported from where they live.

Everything else comes from ``qgis.PyQt`` directly, with fully scoped enums (``Qt.AlignmentFlag.AlignLeft``),
which the Qt 5 and Qt 6 bindings both accept.
"""

from __future__ import annotations

try:  # Qt 6: QAction lives in QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt 5
    from qgis.PyQt.QtWidgets import QAction

__all__ = ["QAction"]
