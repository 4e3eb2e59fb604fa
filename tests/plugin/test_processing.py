"""Each Processing algorithm runs through processing.run() on a synthetic scene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.qgis, pytest.mark.slow]


@pytest.fixture
def provider(qgis_app, qgis_processing, plugin_settings):
    from qgis.core import QgsApplication

    from geo_dfm_qgis.processing_provider.provider import GeoDfmProvider

    registry = QgsApplication.processingRegistry()
    provider = GeoDfmProvider()
    assert registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)


def test_chip_scene_writes_chips_and_index_with_the_scene_crs(provider, small_scene, tmp_path):
    import processing
    import rasterio
    from qgis.core import QgsProcessingFeedback, QgsVectorLayer

    feedback = QgsProcessingFeedback()
    progress = []
    feedback.progressChanged.connect(progress.append)
    result = processing.run(
        "geodfm:chips",
        {"INPUT": str(small_scene), "CHIP_SIZE": "32", "OVERLAP": "0", "OUTPUT": str(tmp_path / "chips")},
        feedback=feedback,
    )
    index = QgsVectorLayer(result["INDEX"], "index", "ogr")
    assert index.isValid()
    assert index.crs().authid() == "EPSG:32633"
    assert index.featureCount() == 3 * 2  # 96×64 px in 32 px chips without overlap
    chip_files = sorted((tmp_path / "chips" / "chips").glob("*.tif"))
    assert len(chip_files) == 6
    with rasterio.open(chip_files[0]) as chip:
        assert chip.crs.to_epsg() == 32633 and (chip.width, chip.height) == (32, 32)
    assert progress and max(progress) == pytest.approx(100.0)
    assert json.loads((tmp_path / "chips" / "summary.json").read_text())["chips"] == 6


def test_a_failing_run_raises_with_geo_dfms_message(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException):
        processing.run(
            "geodfm:chips", {"INPUT": str(tmp_path / "missing.tif"), "OUTPUT": str(tmp_path / "c")}
        )


def test_cancel_stops_the_one_shot_run_and_leaves_no_output(provider, small_scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda _value: feedback.cancel())
    result = processing.run(
        "geodfm:chips",
        {"INPUT": str(small_scene), "CHIP_SIZE": "8", "OVERLAP": "0", "OUTPUT": str(tmp_path / "cancelled")},
        feedback=feedback,
    )
    assert feedback.isCanceled()
    assert "INDEX" not in result or result.get("INDEX") is None
    assert not (tmp_path / "cancelled").exists()


def test_localize_returns_heatmap_and_regions_in_the_scene_crs(
    provider, synthetic_scene, toy_model_path, tmp_path
):
    import processing
    import rasterio
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    scene = synthetic_scene("localize", width=160, height=128, seed=7)
    result = processing.run(
        "geodfm:localize",
        {
            "INPUT": str(scene.path),
            "QUERIES": "water\nforest",
            "MODEL": "toy",
            "OUTPUT": str(tmp_path / "loc"),
        },
    )
    summary = json.loads(Path(result["SUMMARY"]).read_text())
    assert summary["queries"] == ["water", "forest"]
    assert result["HEATMAP"] == summary["outputs"]["heatmaps"]["water"]
    with rasterio.open(result["HEATMAP"]) as heatmap:
        assert heatmap.crs == scene.crs and heatmap.transform.almost_equals(scene.transform)
        assert (heatmap.width, heatmap.height) == (160, 128)
    raster = QgsRasterLayer(result["HEATMAP"], "heatmap", "gdal")
    regions = QgsVectorLayer(result["REGIONS"], "regions", "ogr")
    assert raster.isValid() and regions.isValid()
    assert regions.crs().authid() == raster.crs().authid() == "EPSG:32633"


def test_classify_returns_a_class_raster_the_plugin_styles_with_its_colour_table(
    provider, synthetic_scene, toy_model_path, tmp_path
):
    import processing
    import rasterio
    from qgis.core import QgsPalettedRasterRenderer

    from geo_dfm_qgis.layers import result_layers

    scene = synthetic_scene("classify", width=128, height=128, seed=8)
    result = processing.run(
        "geodfm:classify",
        {
            "INPUT": str(scene.path),
            "LABELS": "water, forest\nfields",
            "MODEL": "toy",
            "OUTPUT": str(tmp_path / "cls"),
        },
    )
    summary = json.loads(Path(result["SUMMARY"]).read_text())
    assert summary["labels"] == ["water", "forest", "fields"]
    with rasterio.open(result["CLASSES"]) as classes:
        assert classes.crs == scene.crs and classes.dtypes[0] == "uint8"
        colormap = classes.colormap(1)
    layers = [layer for layer, _visible in result_layers("classify", summary)]
    assert all(layer.isValid() for layer in layers)
    class_layer = layers[-1]
    renderer = class_layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    styled = {c.label: c.color.getRgb()[:3] for c in renderer.classes()}
    assert set(styled) == {"water", "forest", "fields"}
    for value, label in enumerate(summary["labels"]):
        assert styled[label] == colormap[value][:3]  # same colours as the file's colour table
    regions = layers[0]
    assert regions.crs().authid() == "EPSG:32633"
    assert {c.value() for c in regions.renderer().categories()} <= set(summary["labels"])


def test_search_returns_ranked_footprints(provider, synthetic_scene, toy_model_path, tmp_path):
    import processing
    from qgis.core import QgsVectorLayer

    scene = synthetic_scene("search", width=128, height=128, seed=9)
    result = processing.run(
        "geodfm:search",
        {
            "INPUTS": [str(scene.path)],
            "QUERY": "water",
            "TOP_K": 5,
            "MODEL": "toy",
            "OUTPUT": str(tmp_path / "found.gpkg"),
        },
    )
    assert result["OUTPUT"] == str(tmp_path / "found.gpkg")
    results = QgsVectorLayer(result["RESULTS"], "results", "ogr")
    assert results.isValid() and results.crs().authid() == "EPSG:32633"
    ranks = sorted(f["rank"] for f in results.getFeatures())
    assert ranks == list(range(1, len(ranks) + 1)) and 1 <= len(ranks) <= 5
    scores = [f["score"] for f in sorted(results.getFeatures(), key=lambda f: f["rank"])]
    assert scores == sorted(scores, reverse=True)
    assert Path(result["INDEX"]).is_file()
    from qgis.core import QgsGraduatedSymbolRenderer

    from geo_dfm_qgis.layers import result_layers

    ((styled, visible),) = result_layers(
        "search", {"outputs": {"results": result["OUTPUT"]}, "query": "water"}
    )
    assert styled.isValid() and visible and styled.name() == "search: water"
    assert isinstance(styled.renderer(), QgsGraduatedSymbolRenderer) and styled.labelsEnabled()
