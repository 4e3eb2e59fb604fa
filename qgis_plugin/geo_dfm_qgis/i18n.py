"""Translation: every user-visible string of the plugin goes through :func:`tr`.

Qt looks the text up in the translators installed on the application (context ``geo_dfm_qgis``);
:func:`install_translator` loads ``i18n/geo_dfm_qgis_<locale>.qm`` when the plugin ships one.
"""

from __future__ import annotations

import os

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

CONTEXT = "geo_dfm_qgis"
I18N_DIR = os.path.join(os.path.dirname(__file__), "i18n")


def tr(text: str) -> str:
    """``text`` in the user's language (unchanged when no translation is installed)."""
    return QCoreApplication.translate(CONTEXT, text)


def install_translator() -> QTranslator | None:
    """Load the translation for QGIS's locale, if the plugin has one; returns it (keep a reference)."""
    locale = str(QgsSettings().value("locale/userLocale", "") or "")[:2]
    path = os.path.join(I18N_DIR, f"geo_dfm_qgis_{locale}.qm")
    if not locale or not os.path.isfile(path):
        return None
    translator = QTranslator()
    if not translator.load(path):
        return None
    QCoreApplication.installTranslator(translator)
    return translator
