"""The dock panel, driven with QTest in a headless QGIS, running jobs through a real geo-dfm worker."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workers():
    """One geo-dfm worker for the panel tests, as the plugin keeps one per QGIS session."""
    from geo_dfm_qgis.task import WorkerHolder

    holder = WorkerHolder()
    yield holder
    holder.shutdown()


@pytest.fixture
def dock(qgis_app, qgis_iface, qgis_new_project, plugin_settings, workers):
    from geo_dfm_qgis.dock import GeoDfmDock

    panel = GeoDfmDock(qgis_iface, workers)
    panel.resize(400, 860)
    panel.show()  # offscreen: laid out and clickable like a docked panel
    yield panel
    if panel.task is not None:
        panel.task.cancel()
    panel.deleteLater()


def add_raster(path: Path, name: str = "scene"):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(path), name, "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


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


def test_panel_widgets_are_driven_with_qtest_and_their_state_persists(
    dock, small_scene, tmp_path, qgis_iface
):
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    from geo_dfm_qgis.dock import GeoDfmDock

    layer = add_raster(small_scene)
    dock.layer_combo.setLayer(layer)
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("localize"))
    assert dock.texts.currentWidget() is dock.queries
    type_into(dock.queries, "airport runway")
    QTest.keyClick(dock.queries, Qt.Key.Key_Return)
    type_into(dock.queries, "water")
    dock.chip_size.clear()
    type_into(dock.chip_size, "100m")
    spec = dock.job_spec()
    assert spec.queries == ("airport runway", "water")
    assert spec.scene == str(small_scene)
    argv = spec.commands()[0][1]
    assert argv[:4] == ["localize", str(small_scene), "airport runway", "water"]
    assert argv[argv.index("--chip-size") + 1] == "100m"

    # classify: labels typed into the editable list, saved and loaded again
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("classify"))
    assert dock.texts.currentIndex() == 1
    for label in ("water", "forest", "town"):
        type_into(dock.label_edit, label)
        QTest.keyClick(dock.label_edit, Qt.Key.Key_Return)
    assert dock.labels() == ["water", "forest", "town"]
    labels_file = tmp_path / "labels.txt"
    dock.save_labels(str(labels_file))
    assert labels_file.read_text().split() == ["water", "forest", "town"]
    dock.labels_list.setCurrentRow(1)
    click(dock.findChild(type(dock.run_button), "labels_remove"))
    assert dock.labels() == ["water", "town"]
    dock.load_labels(str(labels_file))
    assert dock.labels() == ["water", "forest", "town"]
    classify_argv = dock.job_spec().commands()[0][1]
    assert classify_argv[classify_argv.index("--labels") + 1] == "water,forest,town"
    dock.preset_combo.setCurrentIndex(dock.preset_combo.findData("landcover"))
    assert not dock.labels_list.isEnabled()
    preset_argv = dock.job_spec().commands()[0][1]
    assert preset_argv[preset_argv.index("--preset") + 1] == "landcover"

    # state persists: a new panel shows what this one had
    dock.save_state()
    again = GeoDfmDock(qgis_iface, dock.workers)
    try:
        assert again.mode_combo.currentData() == "classify"
        assert again.labels() == ["water", "forest", "town"]
        assert again.preset_combo.currentData() == "landcover"
        assert again.queries.toPlainText() == "airport runway\nwater"
        assert again.chip_size.text() == "100m"
        assert again.layer_combo.currentLayer() == layer
    finally:
        again.deleteLater()


def test_run_with_an_unknown_model_reports_geo_dfms_error_and_adds_nothing(dock, small_scene, wait_until):
    layer = add_raster(small_scene)
    dock.layer_combo.setLayer(layer)
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("localize"))
    type_into(dock.queries, "water")
    dock.model_combo.setEditText("no-such-model")
    before = group_names()
    click(dock.run_button)
    assert dock.task is not None and not dock.run_button.isEnabled(), dock.log_view.toPlainText()
    wait_until(lambda: dock.task is None, timeout=120)
    log = dock.log_view.toPlainText()
    assert "no-such-model" in log and "Failed" in log
    assert group_names() == before
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
    # the worker survives a failed job and is ready for the next one
    assert dock.workers.current.running


def test_run_refuses_an_incomplete_job_without_starting_anything(dock, small_scene):
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("localize"))
    dock.queries.clear()
    click(dock.run_button)
    assert dock.task is None
    assert "Cannot run" in dock.log_view.toPlainText()


def start_localize(dock, scene_path: Path, query: str, chip_size: str = "") -> None:
    layer = add_raster(scene_path)
    dock.layer_combo.setLayer(layer)
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("localize"))
    dock.queries.clear()
    type_into(dock.queries, query)
    dock.model_combo.setEditText("toy")
    dock.chip_size.setText(chip_size)
    click(dock.run_button)
    assert dock.task is not None, dock.log_view.toPlainText()


@pytest.mark.slow
def test_localize_run_adds_styled_layers_with_the_scene_crs(
    dock, synthetic_scene, toy_model_path, wait_until, artifacts_dir
):
    import rasterio
    from qgis.core import (
        QgsGraduatedSymbolRenderer,
        QgsProject,
        QgsRasterLayer,
        QgsSingleBandPseudoColorRenderer,
        QgsVectorLayer,
    )

    scene = synthetic_scene("panel", width=192, height=192, seed=5)
    start_localize(dock, scene.path, "water")
    before = group_names()  # the scene layer; the result group comes when the task finishes
    progress_seen = []
    dock.progress_bar.valueChanged.connect(progress_seen.append)
    wait_until(lambda: dock.task is None, timeout=240)
    log = dock.log_view.toPlainText()
    assert "Added 2 layers." in log, log
    assert dock.progress_bar.value() == 100 and progress_seen
    root = QgsProject.instance().layerTreeRoot()
    assert group_names() == ["geo-dfm localize: water", *before]
    layers = [node.layer() for node in root.children()[0].findLayers()]
    regions, heatmap = layers
    assert isinstance(regions, QgsVectorLayer) and isinstance(heatmap, QgsRasterLayer)
    with rasterio.open(heatmap.source()) as written:
        assert written.crs == scene.crs
        assert written.transform.almost_equals(scene.transform)
        assert (heatmap.width(), heatmap.height()) == (written.width, written.height) == (192, 192)
    for layer in layers:
        assert layer.isValid()
        assert layer.crs().authid() == "EPSG:32633" == scene.crs.to_string()
    assert isinstance(heatmap.renderer(), QgsSingleBandPseudoColorRenderer)
    assert 0 < heatmap.renderer().opacity() < 1
    items = heatmap.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert items[0].color.alpha() == 0 and items[-1].color.alpha() == 255  # low scores transparent
    assert isinstance(regions.renderer(), QgsGraduatedSymbolRenderer) and regions.labelsEnabled()
    assert regions.featureCount() >= 1
    save_screenshot(dock, artifacts_dir)


@pytest.mark.slow
def test_cancel_during_a_run_stops_the_job_and_adds_nothing(
    dock, synthetic_scene, toy_model_path, wait_until, tmp_path
):
    scene = synthetic_scene("big", width=768, height=768, seed=6)
    start_localize(dock, scene.path, "forest", chip_size="16")
    before = group_names()
    output = Path(dock.task.spec.output)
    events = []

    def press_cancel_on_first_progress(event):
        events.append(event)
        task = dock.task
        if event.get("event") == "progress" and task is not None and not task.isCanceled():
            click(dock.cancel_button)

    dock.task.eventReceived.connect(press_cancel_on_first_progress)
    wait_until(lambda: dock.task is None, timeout=240)
    assert "Cancelled; nothing was added." in dock.log_view.toPlainText()
    assert [e for e in events if e["event"] == "error"][-1]["code"] == 130
    assert not [e for e in events if e["event"] == "result"]
    assert group_names() == before
    assert not output.exists()  # the job's atomic output folder was removed, temporary files too
    assert not output.parent.exists() or list(output.parent.iterdir()) == []
    assert dock.workers.current.running  # the worker stays up for the next run


def save_screenshot(widget, artifacts_dir: Path) -> Path:
    target = artifacts_dir / "qgis-panel.png"
    assert widget.grab().save(str(target))
    shutil.copyfile(target, REPO_ROOT / "docs" / "qgis-panel.png")
    return target


def test_extent_choices_become_the_aoi_argument(dock, small_scene, qgis_iface):
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsFeature,
        QgsGeometry,
        QgsProject,
        QgsRectangle,
        QgsVectorLayer,
    )

    layer = add_raster(small_scene)  # 500000..500960 E, 4649360..4650000 N (EPSG:32633)
    dock.layer_combo.setLayer(layer)
    type_into(dock.queries, "water")

    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32633"))
    canvas.setExtent(QgsRectangle(500100, 4649500, 500300, 4649700))
    dock.extent_combo.setCurrentIndex(1)
    aoi = dock.job_spec().chips.aoi
    minx, miny, maxx, maxy = (float(v) for v in aoi.split(","))
    shown = canvas.extent()  # the canvas widens the extent to its aspect ratio
    assert (minx, maxx) == pytest.approx((max(shown.xMinimum(), 500000), min(shown.xMaximum(), 500960)))
    assert (miny, maxy) == pytest.approx((max(shown.yMinimum(), 4649360), min(shown.yMaximum(), 4650000)))

    polygons = QgsVectorLayer("Polygon?crs=EPSG:4326", "fields", "memory")
    features = []
    for lon in (15.0, 15.001):
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(lon, 41.99, lon + 0.0005, 41.9905)))
        features.append(feature)
    polygons.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(polygons)
    east = [f.id() for f in polygons.getFeatures() if f.geometry().boundingBox().xMinimum() > 15.0005]
    polygons.selectByIds(east)
    dock.extent_combo.setCurrentIndex(2)
    dock.aoi_layer.setLayer(polygons)
    written = QgsVectorLayer(dock.job_spec().chips.aoi, "aoi", "ogr")
    assert written.isValid() and written.featureCount() == 1
    assert written.crs().authid() == "EPSG:4326"  # geo-dfm reprojects the AOI to the scene
    assert next(written.getFeatures()).geometry().boundingBox().xMinimum() == pytest.approx(15.001)
