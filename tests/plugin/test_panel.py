"""The dock panel, driven with QTest in a headless QGIS, running jobs through a real geo-dfm worker."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.plugin.panel_helpers import (
    add_raster,
    argv_of,
    click,
    group_names,
    save_screenshot,
    type_into,
    write_scene,
)

pytestmark = pytest.mark.qgis

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_panel_widgets_are_driven_with_qtest_and_their_state_persists(
    dock, small_scene, tmp_path, qgis_iface
):
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    from geo_dfm_qgis.dock import GeoDfmDock

    layer = add_raster(small_scene)
    dock.layer_combo.setLayer(layer)
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("localize"))
    assert dock.queries.isVisibleTo(dock) and not dock.labels_page.isVisibleTo(dock)
    type_into(dock.queries, "airport runway")
    QTest.keyClick(dock.queries, Qt.Key.Key_Return)
    type_into(dock.queries, "water")
    dock.chip_size.clear()
    type_into(dock.chip_size, "100m")
    spec, _ = dock.job_spec()
    assert spec.queries == ("airport runway", "water")
    assert spec.scene == str(small_scene)
    (call,) = spec.calls()
    assert call.argv[:4] == ("localize", str(small_scene), "airport runway", "water")
    assert call.argv[call.argv.index("--chip-size") + 1] == "100m"
    assert (
        call.params["queries"] == ["airport runway", "water"] and call.params["chips"]["chip_size"] == "100m"
    )

    # classify: labels typed into the editable list, saved and loaded again
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("classify"))
    assert dock.labels_page.isVisibleTo(dock) and not dock.queries.isVisibleTo(dock)
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
    classify_argv = argv_of(dock)
    assert classify_argv[classify_argv.index("--labels") + 1] == "water,forest,town"
    dock.preset_combo.setCurrentIndex(dock.preset_combo.findData("landcover"))
    assert not dock.label_edit.isEnabled()
    preset_argv = argv_of(dock)
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


def test_two_runs_started_in_the_same_second_get_their_own_output_folders(dock, small_scene, monkeypatch):
    import time

    from geo_dfm_qgis import run_folders

    frozen = time.localtime()
    monkeypatch.setattr(run_folders.time, "localtime", lambda _now=None: frozen)
    dock.layer_combo.setLayer(add_raster(small_scene))
    type_into(dock.queries, "water")
    first, _ = dock.job_spec()
    someone_elses = Path(f"{first.output}-2")
    someone_elses.mkdir(parents=True)  # an existing folder with the next name is never reused
    second, _ = dock.job_spec()
    assert first.output != second.output != str(someone_elses)
    assert Path(second.output).parent == Path(first.output).parent and not Path(second.output).exists()


def test_a_map_canvas_that_shows_none_of_the_layer_is_refused_next_to_the_extent(
    dock, small_scene, qgis_iface
):
    from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle

    dock.layer_combo.setLayer(add_raster(small_scene))  # 500000..500960 E, 4649360..4650000 N
    type_into(dock.queries, "water")
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32633"))
    canvas.setExtent(QgsRectangle(600000, 4700000, 601000, 4701000))  # 100 km away
    dock.extent_combo.setCurrentIndex(1)
    _, problems = dock.job_spec()
    assert [p.field for p in problems] == ["extent"]
    click(dock.run_button)
    assert dock.task is None  # nothing started, not even the whole layer
    label = dock.field_problems["extent"]
    assert not label.isHidden() and "shows no part of scene" in label.text()
    assert "Cannot run" in dock.log_view.toPlainText()


def test_a_layer_only_in_qgis_memory_is_refused_before_geo_dfm_starts(dock):
    from osgeo import gdal  # QGIS's own GDAL: the /vsimem file exists in this process only

    path = "/vsimem/geo-dfm-test.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(path, 16, 16, 3, gdal.GDT_Byte)
    dataset.SetGeoTransform([500000, 10, 0, 4650000, 0, -10])
    dataset = None
    try:
        dock.layer_combo.setLayer(add_raster(Path(path), "in memory"))
        type_into(dock.queries, "water")
        click(dock.run_button)
        assert dock.task is None
        label = dock.field_problems["scene"]
        assert not label.isHidden() and "/vsimem" in label.text() and "GeoTIFF" in label.text()
    finally:
        gdal.Unlink(path)


def test_bands_follow_the_layer_style_and_can_be_chosen(dock, tmp_path):
    from qgis.core import QgsMultiBandColorRenderer

    landsat_like = add_raster(write_scene(tmp_path / "six.tif", 6), "six bands")
    renderer = landsat_like.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    renderer.setRedBand(3)
    renderer.setGreenBand(2)
    renderer.setBlueBand(1)  # true colour for Landsat: red = band 3
    dock.layer_combo.setLayer(landsat_like)
    type_into(dock.queries, "water")
    argv = argv_of(dock)
    assert argv[argv.index("--bands") + 1] == "3,2,1"
    assert dock.job_spec()[0].calls()[0].params["chips"]["bands"] == "3,2,1"
    for combo, band in zip(dock.band_combos, (4, 3, 2), strict=True):
        combo.setBand(band)  # false colour, chosen in the panel
    argv = argv_of(dock)
    assert argv[argv.index("--bands") + 1] == "4,3,2"

    grey = add_raster(write_scene(tmp_path / "one.tif", 1), "one band")
    dock.layer_combo.setLayer(grey)
    argv = argv_of(dock)
    assert argv[argv.index("--bands") + 1] == "1"


def test_panel_fits_a_small_screen_and_explains_every_input(dock, monkeypatch):
    from qgis.PyQt.QtCore import QUrl
    from qgis.PyQt.QtGui import QDesktopServices
    from qgis.PyQt.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit, QWidget

    assert dock.minimumSizeHint().height() < 400  # a 768-px laptop screen holds it, with room
    dock.resize(400, 500)
    scroll = dock.widget()
    assert scroll.verticalScrollBar().maximum() > 0  # the rest scrolls, nothing is cut off
    assert scroll.horizontalScrollBar().maximum() == 0  # and a 400-px-wide dock needs no sideways scrolling
    inputs = [
        w
        for w in dock.findChildren(QWidget)
        if w.objectName()
        and not w.objectName().startswith("qt_")
        and (
            isinstance(w, (QComboBox, QLineEdit, QPlainTextEdit, QAbstractButton))
            or "File" in type(w).__name__
        )
    ]
    assert len(inputs) > 20
    assert [w.objectName() for w in inputs if not w.toolTip()] == []
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    click(dock.help_button)
    assert opened == [QUrl("https://github.com/geo-dfm/geo-dfm/blob/main/docs/qgis.md").toString()]


def test_panel_texts_go_through_qt_translation(qgis_app, qgis_iface, plugin_settings, workers):
    from qgis.PyQt.QtCore import QCoreApplication, QTranslator

    from geo_dfm_qgis.dock import GeoDfmDock

    class German(QTranslator):
        WORDS = {"Run": "Ausführen", "Whole layer": "Ganzer Layer", "Chip size": "Kachelgröße"}

        def translate(self, context, text, disambiguation=None, n=-1):
            return self.WORDS.get(text, "") if context == "geo_dfm_qgis" else ""

    translator = German()
    QCoreApplication.installTranslator(translator)
    try:
        panel = GeoDfmDock(qgis_iface, workers)
        assert panel.run_button.text() == "Ausführen"
        assert panel.extent_combo.itemText(0) == "Ganzer Layer"
        panel.deleteLater()
    finally:
        QCoreApplication.removeTranslator(translator)


@pytest.mark.slow
def test_choices_come_from_the_worker_and_a_preset_shows_its_classes(dock, worker_capabilities):
    caps = worker_capabilities
    assert caps.protocol >= 2
    modes = [dock.mode_combo.itemData(i) for i in range(dock.mode_combo.count())]
    assert modes == list(caps.modes) == ["localize", "classify", "search", "annotate", "finetune"]
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("localize"))
    methods = [dock.method_combo.itemData(i) for i in range(dock.method_combo.count())]
    assert methods == list(caps.choices("localize", "method")) and "selo" in methods
    models = [dock.model_combo.itemText(i) for i in range(dock.model_combo.count())]
    assert models == list(caps.model_names) and "toy" in models

    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("classify"))
    dock.add_label("water")
    dock.add_label("forest")
    dock.preset_combo.setCurrentIndex(dock.preset_combo.findData("landcover"))
    shown = [dock.labels_list.item(i).text() for i in range(dock.labels_list.count())]
    assert shown == list(caps.preset_labels("landcover")) and len(shown) >= 5
    dock.preset_combo.setCurrentIndex(0)  # back to custom labels: they are still there
    assert dock.labels() == ["water", "forest"]


@pytest.mark.slow
def test_a_model_that_is_not_downloaded_is_reported_before_the_run_and_offered(
    dock, worker_capabilities, small_scene, wait_until
):
    missing = next(m.name for m in worker_capabilities.models if m.downloaded is False)
    dock.layer_combo.setLayer(add_raster(small_scene))
    type_into(dock.queries, "water")
    dock.model_combo.setEditText(missing)
    dock.chip_size.setText("32")  # the model's input size (224 px) is larger than the 96×64 scene
    assert not dock.model_notice_row.isHidden()  # said before anything runs
    assert missing in dock.model_notice.text() and dock.download_button.isEnabled()
    before = group_names()
    click(dock.run_button)
    output = Path(dock.task.spec.output)
    wait_until(lambda: dock.task is None, timeout=120)
    assert "is not downloaded yet" in dock.log_view.toPlainText()
    assert not output.exists() and group_names() == before  # the job itself never started

    click(dock.download_button)  # offline here: the download fails and says why
    assert dock.download_task is not None
    wait_until(lambda: dock.download_task is None, timeout=120)
    log = dock.log_view.toPlainText()
    assert "Download failed" in log and missing in log
    assert dock.run_button.isEnabled()


def test_run_refuses_an_incomplete_job_without_starting_anything(dock, small_scene):
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("localize"))
    dock.layer_combo.setLayer(add_raster(small_scene))
    dock.queries.clear()
    click(dock.run_button)
    assert dock.task is None
    assert "Cannot run" in dock.log_view.toPlainText()
    assert not dock.field_problems["queries"].isHidden()


@pytest.mark.slow
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
    from affine import Affine
    from qgis.core import QgsProject, QgsRasterLayer, QgsSingleBandPseudoColorRenderer, QgsVectorLayer

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
        factor = written.transform.a / scene.transform.a  # chip-level maps are decimated by default
        assert factor >= 1 and factor == int(factor)
        assert written.transform.almost_equals(scene.transform @ Affine.scale(factor))
        assert (heatmap.width(), heatmap.height()) == (written.width, written.height)
        assert written.width == -(-192 // int(factor))
    for layer in layers:
        assert layer.isValid()
        assert layer.crs().authid() == "EPSG:32633" == scene.crs.to_string()
    assert isinstance(heatmap.renderer(), QgsSingleBandPseudoColorRenderer)
    assert 0 < heatmap.renderer().opacity() < 1
    items = heatmap.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert items[0].color.alpha() == 0 and items[-1].color.alpha() == 255  # low scores transparent
    assert regions.featureCount() >= 1 and regions.labelsEnabled()
    from qgis.core import QgsRenderContext

    for symbol in regions.renderer().symbols(QgsRenderContext()):
        assert symbol.symbolLayer(0).color().alpha() < 255  # the heatmap shows through
    save_screenshot(dock, artifacts_dir, "qgis-panel.png")
    save_map(QgsProject.instance().mapLayersByName("scene")[0], layers, artifacts_dir / "qgis-result-map.png")


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


def save_map(scene_layer, result_layers, target: Path) -> Path:
    """Render the scene under the result layers (as the map canvas shows them) to a PNG for the README."""
    from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers([*result_layers, scene_layer])
    settings.setDestinationCrs(scene_layer.crs())
    settings.setExtent(scene_layer.extent())
    settings.setOutputSize(QSize(480, 480))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    assert len({image.pixel(x, 240) for x in range(0, 480, 8)}) > 5  # a picture, not a blank canvas
    assert image.save(str(target))
    shutil.copyfile(target, REPO_ROOT / "docs" / target.name)
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
    aoi = dock.job_spec()[0].chips.aoi
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
    written = QgsVectorLayer(dock.job_spec()[0].chips.aoi, "aoi", "ogr")
    assert written.isValid() and written.featureCount() == 1
    assert written.crs().authid() == "EPSG:4326"  # geo-dfm reprojects the AOI to the scene
    assert next(written.getFeatures()).geometry().boundingBox().xMinimum() == pytest.approx(15.001)
