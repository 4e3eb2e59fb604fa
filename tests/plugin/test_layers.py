"""Result styling: what an analyst sees without touching the layer properties (no geo-dfm run needed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qgis


def polygons(values: list[float], field: str = "max_score", extra: dict | None = None):
    """A memory layer of 10 m squares in EPSG:32633, one per value (and per ``extra`` column value)."""
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsRectangle, QgsVectorLayer
    from qgis.PyQt.QtCore import QVariant

    layer = QgsVectorLayer("Polygon?crs=EPSG:32633", "polygons", "memory")
    fields = [QgsField(field, QVariant.Double)]
    fields += [QgsField(name, QVariant.String) for name in (extra or {})]
    layer.dataProvider().addAttributes(fields)
    layer.updateFields()
    features = []
    for i, value in enumerate(values):
        feature = QgsFeature(layer.fields())
        x = 500000.0 + 20 * i
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(x, 4649000.0, x + 10, 4649010.0)))
        feature[field] = value
        for name, column in (extra or {}).items():
            feature[name] = column[i]
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    layer.updateExtents()
    return layer


def symbols(layer):
    from qgis.core import QgsRenderContext

    return layer.renderer().symbols(QgsRenderContext())


def assert_semi_transparent_with_an_outline(symbol) -> None:
    fill = symbol.symbolLayer(0)
    assert 40 <= fill.color().alpha() <= 160, "polygons let the map show through"
    assert fill.strokeColor().alpha() == 255, "outlines stay opaque"
    assert fill.strokeWidth() >= 0.4, "outlines are emphasised"


def test_a_single_hot_region_gets_one_class_not_five_identical_ones(qgis_app):
    from geo_dfm_qgis.layers import style_graduated

    layer = polygons([1.0])
    style_graduated(layer, "max_score")
    renderer = layer.renderer()
    ranges = renderer.ranges() if hasattr(renderer, "ranges") else []
    assert len(ranges) <= 1, [r.label() for r in ranges]
    (symbol,) = symbols(layer)
    assert_semi_transparent_with_an_outline(symbol)
    assert symbol.color().lightness() > 60, "not solid black"


def test_graduated_classes_are_distinct_semi_transparent_and_never_black(qgis_app):
    from geo_dfm_qgis.layers import style_graduated

    layer = polygons([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    style_graduated(layer, "max_score")
    ranges = layer.renderer().ranges()
    labels = [r.label() for r in ranges]
    assert len(ranges) == 5 and len(set(labels)) == 5, labels
    assert ranges[0].lowerValue() == pytest.approx(0.5) and ranges[-1].upperValue() == pytest.approx(1.0)
    lightness = [r.symbol().color().lightness() for r in ranges]
    assert min(lightness) > 60, "the lowest class is not black"
    for r in ranges:
        assert_semi_transparent_with_an_outline(r.symbol())


# --- result groups from job outputs written here (the files a geo-dfm job writes) ----------------------
def write_regions(path, rows: list[tuple[str, float]], layer: str = "regions", column: str = "query"):
    """A GeoPackage layer of 10 m squares with ``column`` and a score column, in EPSG:32633."""
    import geopandas as gpd
    from shapely.geometry import box

    score = "max_score" if layer == "regions" else "score"
    frame = gpd.GeoDataFrame(
        {column: [r[0] for r in rows], score: [r[1] for r in rows]},
        geometry=[box(500000 + 20 * i, 4649000, 500010 + 20 * i, 4649010) for i in range(len(rows))],
        crs="EPSG:32633",
    )
    if layer == "results":
        frame["rank"] = list(range(1, len(rows) + 1))
    frame.to_file(path, layer=layer, driver="GPKG")
    return str(path)


def write_raster(path, data, colormap=None):
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs="EPSG:32633",
        transform=from_origin(500000, 4649100, 10, 10),
    ) as dst:
        dst.write(data, 1)
        if colormap:
            dst.write_colormap(1, colormap)
    return str(path)


def test_several_queries_get_one_hot_region_layer_each_above_their_heatmap(qgis_app, tmp_path):
    import numpy as np
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    from geo_dfm_qgis.layers import ResultGroup, localize_group

    regions = write_regions(tmp_path / "regions.gpkg", [("water", 0.9), ("water", 0.7), ("forest", 0.8)])
    heat = np.linspace(0, 1, 100, dtype="float32").reshape(10, 10)
    summary = {
        "queries": ["water", "forest"],
        "outputs": {
            "regions": regions,
            "heatmaps": {q: write_raster(tmp_path / f"{q}.tif", heat) for q in ("water", "forest")},
        },
    }
    group = localize_group("geo-dfm localize: water, forest", summary)
    assert [g.title for g in group.items] == ["water", "forest"]
    for subgroup, expected_features in zip(group.items, (2, 1), strict=True):
        assert isinstance(subgroup, ResultGroup)
        (hot, heatmap) = subgroup.entries()
        assert isinstance(hot.layer, QgsVectorLayer) and isinstance(heatmap.layer, QgsRasterLayer)
        assert hot.layer.featureCount() == expected_features
        assert {f["query"] for f in hot.layer.getFeatures()} == {subgroup.title}
        assert hot.layer.labelsEnabled()
        for symbol in symbols(hot.layer):
            assert_semi_transparent_with_an_outline(symbol)
    assert [e.visible for e in group.entries()] == [True, True, False, False]  # the first query shows


def test_class_raster_is_semi_transparent_under_labelled_region_polygons(qgis_app, tmp_path):
    import numpy as np

    from geo_dfm_qgis.layers import classify_group

    colormap = {0: (0, 90, 200, 255), 1: (20, 140, 40, 255)}
    classes = write_raster(tmp_path / "classes.tif", np.array([[0, 1], [1, 255]], dtype="uint8"), colormap)
    vectors = write_regions(tmp_path / "labels.gpkg", [("water", 0.9), ("forest", 0.8)], column="label")
    write_regions(tmp_path / "labels.gpkg", [("water", 0.9), ("forest", 0.8)], layer="chips", column="label")
    summary = {"labels": ["water", "forest"], "outputs": {"classes": classes, "vectors": vectors}}
    regions, chips, raster = classify_group("geo-dfm classify", summary).entries()
    assert raster.layer.renderer().opacity() < 1 and raster.visible
    assert {c.label: c.color.getRgb()[:3] for c in raster.layer.renderer().classes()} == {
        "water": (0, 90, 200),
        "forest": (20, 140, 40),
    }
    assert regions.visible and not chips.visible
    assert regions.layer.labelsEnabled()
    for category in regions.layer.renderer().categories():
        fill = category.symbol().symbolLayer(0)
        assert fill.color().alpha() < 100 and fill.strokeColor().alpha() == 255
        assert fill.strokeColor().getRgb()[:3] != (0, 0, 0)


def test_search_results_are_ranked_footprints_with_readable_scores(qgis_app, tmp_path):
    from qgis.core import QgsExpression, QgsExpressionContext, QgsExpressionContextUtils

    from geo_dfm_qgis.layers import search_group

    found = tmp_path / "found.gpkg"
    write_regions(found, [("a", 0.312), ("b", 0.30), ("c", 0.25)], layer="results", column="scene")
    (entry,) = search_group(
        "geo-dfm search: water", {"query": "water", "outputs": {"results": str(found)}}
    ).entries()
    layer = entry.layer
    assert layer.name() == "search: water" and layer.labelsEnabled()
    for symbol in symbols(layer):
        assert_semi_transparent_with_an_outline(symbol)
    settings = layer.labeling().settings()
    expression = QgsExpression(settings.fieldName)
    context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    texts = []
    for feature in layer.getFeatures():
        context.setFeature(feature)
        texts.append(expression.evaluate(context))
    assert texts == ["#1  0.312", "#2  0.300", "#3  0.250"]
