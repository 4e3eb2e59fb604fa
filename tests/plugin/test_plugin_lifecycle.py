"""The plugin loads and unloads in a headless QgsApplication with a stubbed iface, and packages."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO_ROOT / "qgis_plugin" / "geo_dfm_qgis"


def test_metadata_has_the_fields_the_plugin_repository_expects():
    metadata = configparser.ConfigParser()
    metadata.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")
    general = metadata["general"]
    for key in ("name", "description", "about", "version", "author", "email", "repository", "tracker"):
        assert general[key].strip(), key
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["qgisMaximumVersion"] == "4.99"
    assert general["hasProcessingProvider"] == "yes"
    assert general["supportsQt6"] == "True"
    assert (PLUGIN_DIR / general["icon"]).is_file()
    assert "pip install geo-dfm" not in general["about"]  # geo-dfm is not on PyPI
    assert "not on PyPI" in general["about"] and "one click" in general["about"]


def test_plugin_never_imports_geo_dfm_torch_gdal_python_or_numpy():
    """Importing every plugin module adds none of the heavy libraries to a QGIS Python process."""
    code = """
import sys
sys.path.insert(0, sys.argv[1])
import qgis.core, qgis.gui
before = set(sys.modules)
import geo_dfm_qgis.plugin, geo_dfm_qgis.dock, geo_dfm_qgis.settings_dialog, geo_dfm_qgis.layers
import geo_dfm_qgis.processing_provider.algorithms, geo_dfm_qgis.models_dialog, geo_dfm_qgis.diagnostics
print(' '.join(sorted(set(sys.modules) - before)))
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(PLUGIN_DIR.parent)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "geo_dfm_qgis.plugin" in out
    heavy = ("geo_dfm", "torch", "osgeo", "rasterio", "numpy", "open_clip", "PyQt6")
    assert [m for m in out if m.split(".")[0] in heavy] == []


def test_plugin_loads_and_unloads_leaving_nothing_behind(qgis_app, qgis_iface, plugin_settings):
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QCoreApplication, QEvent
    from qgis.PyQt.QtWidgets import QDockWidget

    import geo_dfm_qgis
    from geo_dfm_qgis.compat import QAction

    registry = QgsApplication.processingRegistry()
    window = qgis_iface.mainWindow()
    plugin = geo_dfm_qgis.classFactory(qgis_iface)
    plugin.initGui()
    provider = registry.providerById("geodfm")
    assert provider is not None
    assert {a.name() for a in provider.algorithms()} == {
        "localize",
        "classify",
        "search",
        "annotate",
        "finetune",
        "chips",
    }
    assert window.findChild(QDockWidget, "GeoDfmDock") is plugin.dock
    assert {a.objectName() for a in window.findChildren(QAction) if a.objectName().startswith("geo_dfm")} == {
        "geo_dfm_panel_action",
        "geo_dfm_models_action",
        "geo_dfm_settings_action",
    }
    plugin.actions[0].setChecked(True)  # the toolbar action shows the panel
    assert not plugin.dock.isHidden()

    plugin.unload()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert registry.providerById("geodfm") is None
    assert window.findChildren(QDockWidget, "GeoDfmDock") == []
    assert [a for a in window.findChildren(QAction) if a.objectName().startswith("geo_dfm")] == []
    assert plugin.workers.current is None


def test_the_zip_has_a_licence_and_leaves_out_hidden_files_and_editor_leftovers(tmp_path):
    """What the plugins.qgis.org validator refuses: no LICENSE; hidden files, backups, merge leftovers."""
    sys.path.insert(0, str(REPO_ROOT / "qgis_plugin"))
    try:
        from build_zip import build_zip
    finally:
        sys.path.remove(str(REPO_ROOT / "qgis_plugin"))
    plugin = tmp_path / "geo_dfm_qgis"
    shutil.copytree(PLUGIN_DIR, plugin, ignore=shutil.ignore_patterns("__pycache__"))
    junk = [".DS_Store", ".idea/workspace.xml", "dock.py.orig", "dock.py.rej", "layers.py~", ".dock.py.swp"]
    junk += ["processing_provider/.DS_Store", "Thumbs.db", "__MACOSX/x"]
    for name in junk:
        (plugin / name).parent.mkdir(parents=True, exist_ok=True)
        (plugin / name).write_text("junk")
    with zipfile.ZipFile(build_zip(tmp_path / "dist", plugin)) as archive:
        names = set(archive.namelist())
        licence = archive.read("geo_dfm_qgis/LICENSE").decode()
    assert "MIT License" in licence
    assert [n for n in names if any(n.endswith(j) for j in junk)] == []
    assert "geo_dfm_qgis/dock.py" in names and "geo_dfm_qgis/processing_provider/loading.py" in names
    (plugin / "LICENSE").unlink()
    with pytest.raises(SystemExit, match="LICENSE"):
        build_zip(tmp_path / "dist", plugin)


def test_make_plugin_zip_builds_an_installable_zip(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "qgis_plugin" / "build_zip.py"), "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    archive_path = tmp_path / "geo_dfm_qgis.zip"
    assert result.stdout.strip() == str(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        names = set(archive.namelist())
        assert archive.testzip() is None
    assert {n.split("/")[0] for n in names} == {"geo_dfm_qgis"}
    for required in (
        "__init__.py",
        "metadata.txt",
        "icon.png",
        "plugin.py",
        "processing_provider/provider.py",
        "LICENSE",
    ):
        assert f"geo_dfm_qgis/{required}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_zipped_plugin_imports_from_a_plugins_folder(tmp_path):
    """Unzipped into a fresh folder (as QGIS does), the package imports and has classFactory."""
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "qgis_plugin" / "build_zip.py"), "--output", str(tmp_path)],
        capture_output=True,
        check=True,
    )
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(tmp_path / "geo_dfm_qgis.zip") as archive:
        archive.extractall(plugins)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import geo_dfm_qgis, geo_dfm_qgis.plugin; "
        "print(geo_dfm_qgis.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(plugins)], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str(plugins / "geo_dfm_qgis" / "__init__.py")
