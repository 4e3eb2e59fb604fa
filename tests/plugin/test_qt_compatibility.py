"""The plugin loads in QGIS 3.22 (Qt 5) through QGIS 4 (Qt 6): a scan of its source for Qt5-only forms.

PyQt6 drops unscoped enum access (``Qt.AlignLeft``; only ``Qt.AlignmentFlag.AlignLeft`` works),
``exec_()``, ``QRegExp``, ``QDesktopWidget`` and moves ``QAction`` to QtGui; QGIS 4's ``qgis.PyQt``
shim papers over none of these. Every attribute chain on a Qt or QGIS class is checked against the
classes themselves: an enum value must be reached through its enum type.
"""

from __future__ import annotations

import ast
import enum
import importlib
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

PLUGIN_ROOT = (
    os.environ.get("GEO_DFM_QGIS_PLUGIN_ROOT") or Path(__file__).resolve().parents[2] / "qgis_plugin"
)
PLUGIN_DIR = Path(PLUGIN_ROOT) / "geo_dfm_qgis"
QT_MODULES = ("qgis.core", "qgis.gui", "qgis.PyQt.QtCore", "qgis.PyQt.QtGui", "qgis.PyQt.QtWidgets")
QT5_ONLY = {
    r"\bPyQt5\b": "import through qgis.PyQt",
    r"\bPyQt6\b": "import through qgis.PyQt",
    r"\.exec_\(": "exec_() is gone in PyQt6: use exec()",
    r"\bQRegExp\b": "QRegExp is gone in Qt 6: use QRegularExpression",
    r"\bQDesktopWidget\b|\.desktop\(\)": "QDesktopWidget is gone in Qt 6: use QScreen",
    r"\bQVariant\.(Int|Double|String|Bool)\b": "QVariant types are gone in PyQt6: use QMetaType",
    r"\bQt\.MidButton\b": "Qt.MidButton is gone in Qt 6",
}


def plugin_sources() -> list[Path]:
    files = sorted(PLUGIN_DIR.rglob("*.py"))
    assert len(files) > 10
    return files


def is_enum_value(value) -> bool:
    return isinstance(value, enum.Enum) or type(type(value)).__name__ == "enumtype"  # sip enums (PyQt5)


def imported_names(tree: ast.Module) -> dict[str, object]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in QT_MODULES:
            module = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(module, alias.name, None)
    return names


def unscoped_enums(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = imported_names(tree)
    found = []

    def resolve(node):
        if isinstance(node, ast.Name):
            return names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = resolve(node.value)
            value = getattr(base, node.attr, None) if base is not None else None
            if value is not None and is_enum_value(value) and type(value) is not base:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
            return value
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            resolve(node)
    return sorted(set(found))


def test_the_scan_catches_what_it_is_meant_to_catch(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from qgis.PyQt.QtCore import Qt\nfrom qgis.core import QgsTask\n"
        "a = Qt.AlignLeft\nb = Qt.AlignmentFlag.AlignLeft\nc = QgsTask.CanCancel\nd = QgsTask.Flag.CanCancel\n"
    )
    assert unscoped_enums(sample) == ["sample.py:3: Qt.AlignLeft", "sample.py:5: QgsTask.CanCancel"]


def test_enums_are_reached_through_their_enum_types(qgis_app):
    found = [hit for path in plugin_sources() for hit in unscoped_enums(path)]
    assert found == []


def test_no_qt5_only_api_and_qaction_comes_from_its_qt6_home():
    problems = []
    for path in plugin_sources():
        text = path.read_text(encoding="utf-8")
        for pattern, why in QT5_ONLY.items():
            for match in re.finditer(pattern, text):
                problems.append(f"{path.name}:{text[: match.start()].count(chr(10)) + 1}: {why}")
        if path.name != "compat.py" and re.search(
            r"QtWidgets import[^\n]*\bQAction\b|QtWidgets\.QAction\b", text
        ):
            problems.append(f"{path.name}: import QAction from geo_dfm_qgis.compat (QtGui in Qt 6)")
    assert problems == []
