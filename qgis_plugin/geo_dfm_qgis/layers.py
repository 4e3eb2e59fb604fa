"""Result layers: open what a geo-dfm job wrote, style it, and add it to the project as a group.

Called from ``QgsTask.finished()`` (the GUI thread) with the job's summary (the ``result`` event),
whose outputs are described in docs/architecture.md ("Job outputs").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsClassificationEqualInterval,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsGradientColorRamp,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsPalLayerSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsSymbol,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
    QgsWkbTypes,
)
from qgis.PyQt.QtGui import QColor

HEATMAP_RAMP = "Magma"
HEATMAP_OPACITY = 0.75
UNLABELLED = 255


def colour_ramp(name: str = HEATMAP_RAMP):
    """A named ramp from QGIS's default style (a plain gradient if the style lacks it)."""
    ramp = QgsStyle.defaultStyle().colorRamp(name)
    return ramp or QgsGradientColorRamp(QColor(0, 0, 4), QColor(252, 253, 191))


def style_heatmap(layer: QgsRasterLayer, opacity: float = HEATMAP_OPACITY) -> None:
    """Band 1 (normalised score 0–1) through a colour ramp; low scores fade to transparent."""
    ramp = colour_ramp()
    items = []
    for i in range(6):
        value = i / 5
        colour = QColor(ramp.color(value))
        colour.setAlpha(int(255 * min(1.0, value * 2.5)))  # 0 → transparent, ≥ 0.4 → opaque
        items.append(QgsColorRampShader.ColorRampItem(value, colour, f"{value:.1f}"))
    ramp_shader = QgsColorRampShader(0.0, 1.0)
    ramp_shader.setColorRampType(QgsColorRampShader.Type.Interpolated)
    ramp_shader.setColorRampItemList(items)
    shader = QgsRasterShader(0.0, 1.0)
    shader.setRasterShaderFunction(ramp_shader)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    renderer.setOpacity(opacity)
    layer.setRenderer(renderer)


def style_class_raster(layer: QgsRasterLayer, labels: list[str]) -> None:
    """Paletted rendering from the raster's own colour table, classes named by the job's labels."""
    table = layer.dataProvider().colorTable(1)
    classes = []
    for item in QgsPalettedRasterRenderer.colorTableToClassData(table):
        if item.value == UNLABELLED or item.value >= len(labels):
            continue
        classes.append(QgsPalettedRasterRenderer.Class(item.value, item.color, labels[int(item.value)]))
    if classes:
        layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))


def class_colours(layer: QgsRasterLayer, labels: list[str]) -> dict[str, QColor]:
    """``{label: colour}`` read from a class raster's colour table."""
    colours = {}
    for item in QgsPalettedRasterRenderer.colorTableToClassData(layer.dataProvider().colorTable(1)):
        if 0 <= item.value < len(labels):
            colours[labels[int(item.value)]] = item.color
    return colours


def _fill_symbol(colour: QColor, alpha: int = 110) -> QgsSymbol:
    symbol = QgsSymbol.defaultSymbol(QgsWkbTypes.GeometryType.PolygonGeometry) or QgsFillSymbol()
    fill = QColor(colour)
    fill.setAlpha(alpha)
    symbol.setColor(fill)
    symbol.symbolLayer(0).setStrokeColor(QColor(colour).darker(150))
    return symbol


def style_categorized(layer: QgsVectorLayer, field: str, colours: dict[str, QColor]) -> None:
    """One category per distinct value of ``field`` (colours given or taken from a ramp)."""
    values = sorted(str(v) for v in layer.uniqueValues(layer.fields().indexOf(field)) if v is not None)
    ramp = colour_ramp("Spectral")
    categories = []
    for i, value in enumerate(values):
        colour = colours.get(value) or ramp.color(i / max(1, len(values) - 1))
        categories.append(QgsRendererCategory(value, _fill_symbol(colour), value))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))


def style_graduated(layer: QgsVectorLayer, field: str, classes: int = 5) -> None:
    """Equal-interval classes of a numeric ``field`` coloured with the heatmap ramp."""
    renderer = QgsGraduatedSymbolRenderer(field)
    renderer.setClassificationMethod(QgsClassificationEqualInterval())
    renderer.setSourceSymbol(_fill_symbol(QColor(200, 80, 40)))
    renderer.setSourceColorRamp(colour_ramp())
    renderer.updateClasses(layer, classes)
    layer.setRenderer(renderer)


def label_with(layer: QgsVectorLayer, expression: str) -> None:
    """Label features with a QGIS expression, white buffer for legibility."""
    settings = QgsPalLayerSettings()
    settings.fieldName = expression
    settings.isExpression = True
    text = QgsTextFormat()
    text.setSize(9)
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setSize(0.8)
    text.setBuffer(buffer)
    settings.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)


def _vector(path: str, layer_name: str, title: str) -> QgsVectorLayer:
    return QgsVectorLayer(f"{path}|layername={layer_name}", title, "ogr")


def result_layers(mode: str, summary: dict[str, Any]) -> list[tuple[QgsMapLayer, bool]]:
    """Styled layers for a job's summary, topmost first, each with its initial visibility."""
    outputs = summary.get("outputs", {})
    layers: list[tuple[QgsMapLayer, bool]] = []
    if mode == "localize":
        queries = list(summary.get("queries") or outputs.get("heatmaps", {}).keys())
        if outputs.get("regions"):
            regions = _vector(outputs["regions"], "regions", "hot regions")
            if regions.isValid():
                if len(queries) > 1:
                    style_categorized(regions, "query", {})
                else:
                    style_graduated(regions, "max_score")
                label_with(regions, '"query" || \' \' || format_number("max_score", 2)')
            layers.append((regions, True))
        for i, (query, path) in enumerate(outputs.get("heatmaps", {}).items()):
            heatmap = QgsRasterLayer(path, f"heatmap: {query}", "gdal")
            if heatmap.isValid():
                style_heatmap(heatmap)
            layers.append((heatmap, i == 0))
    elif mode == "classify":
        labels = list(summary.get("labels") or [])
        classes = QgsRasterLayer(outputs.get("classes", ""), "classes", "gdal")
        colours = class_colours(classes, labels) if classes.isValid() else {}
        if outputs.get("vectors"):
            regions = _vector(outputs["vectors"], "regions", "label regions")
            if regions.isValid():
                style_categorized(regions, "label", colours)
                label_with(regions, '"label"')
            layers.append((regions, True))
            chips = _vector(outputs["vectors"], "chips", "chip labels")
            if chips.isValid():
                style_categorized(chips, "label", colours)
                label_with(chips, '"label" || \' \' || format_number("confidence", 2)')
            layers.append((chips, False))
        if classes.isValid():
            style_class_raster(classes, labels)
        layers.append((classes, True))
    elif mode == "search":
        query = summary.get("query") or summary.get("parameters", {}).get("query", "")
        results = _vector(outputs.get("results", ""), "results", f"search: {query}".strip())
        if results.isValid():
            style_graduated(results, "score")
            label_with(results, "'#' || \"rank\" || ' ' || format_number(\"score\", 3)")
        layers.append((results, True))
    return layers


def add_layer_group(
    title: str, layers: Iterable[tuple[QgsMapLayer, bool]], project: QgsProject | None = None
) -> list[QgsMapLayer]:
    """Add valid layers to a new group at the top of the layer tree; returns the layers added."""
    project = project or QgsProject.instance()
    valid = [(layer, visible) for layer, visible in layers if layer.isValid()]
    if not valid:
        return []
    group = project.layerTreeRoot().insertGroup(0, title)
    added = []
    for layer, visible in valid:
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        node.setItemVisibilityChecked(visible)
        added.append(layer)
    return added
