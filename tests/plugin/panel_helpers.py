"""Helpers for driving the dock panel in tests: add layers, type, click, read the layer tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_raster(path: Path, name: str = "scene"):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(path), name, "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def write_scene(path: Path, bands: int) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    data = np.random.default_rng(1).integers(0, 255, (bands, 32, 48), dtype=np.uint8)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=48,
        height=32,
        count=bands,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(500000, 4650000, 30, 30),
    ) as dst:
        dst.write(data)
    return path


def type_into(widget, text: str) -> None:
    from qgis.PyQt.QtTest import QTest

    widget.setFocus()
    QTest.keyClicks(widget, text)


def click(button) -> None:
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def group_names() -> list[str]:
    from qgis.core import QgsProject

    return [child.name() for child in QgsProject.instance().layerTreeRoot().children()]


def argv_of(dock) -> list[str]:
    spec, problems = dock.job_spec()
    assert problems == [], problems
    return list(spec.calls()[0].argv)


def save_screenshot(dock, artifacts_dir: Path, name: str) -> Path:
    from qgis.PyQt.QtCore import QCoreApplication

    dock.resize(400, 1000)  # the whole panel, from the top
    QCoreApplication.processEvents()
    dock.widget().verticalScrollBar().setValue(0)
    target = artifacts_dir / name
    assert dock.grab().save(str(target))
    shutil.copyfile(target, REPO_ROOT / "docs" / name)
    return target
