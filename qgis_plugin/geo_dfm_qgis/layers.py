"""Result layers: open what a geo-dfm job wrote, style it for reading at a glance, add it as a group.

Called from ``QgsTask.finished()`` (the GUI thread) with the job's summary (the ``result`` event),
whose outputs are described in docs/architecture.md ("Job outputs"); the Processing algorithms
style the layers they load with the same functions.

The styles: heatmaps through a ramp whose low scores fade to transparent; polygons semi-transparent
with an opaque, emphasised outline, so the map shows through; one hot-region layer per query; the
class raster semi-transparent under its label polygons; search results as ranked footprints
labelled ``#rank score``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsClassificationEqualInterval,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsGraduatedSymbolRenderer,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsPalLayerSettings,
    QgsProject,
    QgsProperty,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsStyle,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

from geo_dfm_qgis.i18n import tr

HEATMAP_RAMP = "Magma"
HEATMAP_OPACITY = 0.75
CLASS_RASTER_OPACITY = 0.6
FILL_ALPHA = 110  # of 255: polygons let the map show through
LABEL_REGION_FILL_ALPHA = 50  # label polygons sit on the class raster, which already carries the colour
OUTLINE_WIDTH_MM = 0.6
UNLABELLED = 255


def colour_ramp(name: str = HEATMAP_RAMP):
    """A named ramp from QGIS's default style (a plain gradient if the style lacks it)."""
    ramp = QgsStyle.defaultStyle().colorRamp(name)
    return ramp or QgsGradientColorRamp(QColor(0, 0, 4), QColor(252, 253, 191))


def score_ramp() -> QgsGradientColorRamp:
    """Light yellow → orange → dark red: every class readable on a map, none black."""
    return QgsGradientColorRamp(
        QColor(254, 217, 118), QColor(189, 0, 38), False, [QgsGradientStop(0.5, QColor(252, 78, 42))]
    )


# --- rasters ------------------------------------------------------------------------------------
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


def style_class_raster(
    layer: QgsRasterLayer, labels: list[str], opacity: float = CLASS_RASTER_OPACITY
) -> None:
    """Paletted rendering from the raster's own colour table, classes named by the job's labels,
    semi-transparent so the scene shows through."""
    table = layer.dataProvider().colorTable(1)
    classes = []
    for item in QgsPalettedRasterRenderer.colorTableToClassData(table):
        if item.value == UNLABELLED or item.value >= len(labels):
            continue
        classes.append(QgsPalettedRasterRenderer.Class(item.value, item.color, labels[int(item.value)]))
    if classes:
        renderer = QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)
        renderer.setOpacity(opacity)
        layer.setRenderer(renderer)


def class_colours(layer: QgsRasterLayer, labels: list[str]) -> dict[str, QColor]:
    """``{label: colour}`` read from a class raster's colour table."""
    colours = {}
    for item in QgsPalettedRasterRenderer.colorTableToClassData(layer.dataProvider().colorTable(1)):
        if 0 <= item.value < len(labels):
            colours[labels[int(item.value)]] = item.color
    return colours


# --- polygons -----------------------------------------------------------------------------------
def fill_symbol(colour: QColor, alpha: int = FILL_ALPHA) -> QgsFillSymbol:
    """A semi-transparent fill with an opaque, darker, emphasised outline."""
    fill = QColor(colour)
    fill.setAlpha(alpha)
    outline = QColor(colour).darker(140)
    outline.setAlpha(255)
    symbol = QgsFillSymbol.createSimple({})
    layer = symbol.symbolLayer(0)
    layer.setColor(fill)
    layer.setStrokeColor(outline)
    layer.setStrokeWidth(OUTLINE_WIDTH_MM)
    return symbol


def style_graduated(layer: QgsVectorLayer, field: str, classes: int = 5) -> None:
    """Equal-interval classes of a numeric ``field`` on the score ramp; as many classes as there are
    distinct values, up to ``classes`` (one value: a single symbol, not five empty "1 - 1" classes)."""
    values = {v for v in layer.uniqueValues(layer.fields().indexOf(field)) if v is not None}
    ramp = score_ramp()
    if len(values) <= 1:
        layer.setRenderer(QgsSingleSymbolRenderer(fill_symbol(ramp.color(1.0))))
        return
    renderer = QgsGraduatedSymbolRenderer(field)
    renderer.setClassificationMethod(QgsClassificationEqualInterval())
    renderer.setSourceSymbol(fill_symbol(ramp.color(0.0)))
    renderer.setSourceColorRamp(ramp)
    renderer.updateClasses(layer, min(classes, len(values)))
    for index, item in enumerate(renderer.ranges()):  # the ramp sets colours; keep fill alpha/outline
        renderer.updateRangeSymbol(index, fill_symbol(item.symbol().color()))
    layer.setRenderer(renderer)


def style_categorized(
    layer: QgsVectorLayer, field: str, colours: Mapping[str, QColor], alpha: int = FILL_ALPHA
) -> None:
    """One category per distinct value of ``field`` (colours given, or taken from a ramp)."""
    values = sorted(str(v) for v in layer.uniqueValues(layer.fields().indexOf(field)) if v is not None)
    ramp = colour_ramp("Spectral")
    categories = []
    for i, value in enumerate(values):
        colour = colours.get(value) or ramp.color(i / max(1, len(values) - 1))
        categories.append(QgsRendererCategory(value, fill_symbol(colour, alpha), value))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))


def label_with(layer: QgsVectorLayer, expression: str, priority: str = "") -> None:
    """Label features with a QGIS expression (white buffer for legibility). Labels never overlap
    (QGIS's label engine drops those that collide); ``priority`` (an expression giving 0–10) decides
    which win."""
    settings = QgsPalLayerSettings()
    settings.fieldName = expression
    settings.isExpression = True
    settings.placement = QgsPalLayerSettings.Placement.OverPoint
    text = QgsTextFormat()
    text.setSize(9)
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setSize(0.8)
    text.setBuffer(buffer)
    settings.setFormat(text)
    if priority:
        settings.dataDefinedProperties().setProperty(
            QgsPalLayerSettings.Property.Priority, QgsProperty.fromExpression(priority)
        )
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)


def style_hot_regions(layer: QgsVectorLayer) -> None:
    """Hot regions of one query: graduated by ``max_score``, labelled with the score."""
    style_graduated(layer, "max_score")
    label_with(layer, 'format_number("max_score", 2)', priority='10 * "max_score"')


def style_label_regions(layer: QgsVectorLayer, colours: Mapping[str, QColor]) -> None:
    """Label polygons over the class raster: class-coloured outlines, a faint fill, the label."""
    style_categorized(layer, "label", colours, alpha=LABEL_REGION_FILL_ALPHA)
    label_with(layer, '"label"', priority='10 * coalesce("mean_confidence", 0.5)')


def style_chip_labels(layer: QgsVectorLayer, colours: Mapping[str, QColor]) -> None:
    style_categorized(layer, "label", colours)
    label_with(layer, '"label" || \' \' || format_number("confidence", 2)', priority='10 * "confidence"')


def style_search_results(layer: QgsVectorLayer) -> None:
    """Ranked footprints: the best scores darkest, labelled ``#1 0.312``, the best ranks placed first."""
    style_graduated(layer, "score")
    label_with(
        layer,
        "'#' || \"rank\" || '  ' || format_number(\"score\", 3)",
        priority='10 - least(9, "rank" - 1)',
    )


def style_footprints(layer: QgsVectorLayer) -> None:
    """Chip footprints: outlines only."""
    symbol = fill_symbol(QColor(40, 90, 200), alpha=0)
    symbol.symbolLayer(0).setStrokeWidth(0.3)
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))


# --- result groups ------------------------------------------------------------------------------
@dataclass
class ResultLayer:
    """A styled layer and whether it starts visible."""

    layer: QgsMapLayer
    visible: bool = True


@dataclass
class ResultGroup:
    """Layers (and sub-groups) of one result, topmost first."""

    title: str
    items: list[ResultLayer | ResultGroup] = field(default_factory=list)

    def entries(self) -> list[ResultLayer]:
        """Every layer of the group and its sub-groups, topmost first."""
        found: list[ResultLayer] = []
        for item in self.items:
            found += item.entries() if isinstance(item, ResultGroup) else [item]
        return found

    def layers(self) -> list[QgsMapLayer]:
        return [entry.layer for entry in self.entries()]


def vector_uri(path: str, layer_name: str, subset: str = "") -> str:
    """An OGR layer URI: ``path|layername=name[|subset=expression]``."""
    return f"{path}|layername={layer_name}" + (f"|subset={subset}" if subset else "")


def query_filter(query: str) -> str:
    """The subset expression selecting one query's rows (quotes doubled, as SQL wants)."""
    return "\"query\" = '{}'".format(query.replace("'", "''"))


def _vector(uri: str, title: str) -> QgsVectorLayer:
    return QgsVectorLayer(uri, title, "ogr")


def localize_group(title: str, summary: Mapping[str, Any]) -> ResultGroup:
    """Per query: its hot regions (a filtered view of regions.gpkg) above its heatmap; several
    queries get one sub-group each, the first visible."""
    outputs = summary.get("outputs", {})
    heatmaps = dict(outputs.get("heatmaps") or {})
    queries = list(summary.get("queries") or heatmaps)
    per_query = []
    for i, query in enumerate(queries):
        items: list[ResultLayer | ResultGroup] = []
        if outputs.get("regions"):
            uri = vector_uri(outputs["regions"], "regions", query_filter(query) if len(queries) > 1 else "")
            regions = _vector(uri, tr("hot regions: {query}").format(query=query))
            if regions.isValid():
                style_hot_regions(regions)
            items.append(ResultLayer(regions, i == 0))
        if query in heatmaps:
            heatmap = QgsRasterLayer(heatmaps[query], tr("heatmap: {query}").format(query=query), "gdal")
            if heatmap.isValid():
                style_heatmap(heatmap)
            items.append(ResultLayer(heatmap, i == 0))
        per_query.append(ResultGroup(query, items))
    if len(per_query) == 1:
        return ResultGroup(title, per_query[0].items)
    return ResultGroup(title, list(per_query))


def classify_group(title: str, summary: Mapping[str, Any]) -> ResultGroup:
    """Label regions (with labels) over the chip labels (hidden) over the semi-transparent class raster."""
    outputs = summary.get("outputs", {})
    labels = list(summary.get("labels") or [])
    classes = QgsRasterLayer(outputs.get("classes", ""), tr("classes"), "gdal")
    colours = class_colours(classes, labels) if classes.isValid() else {}
    items: list[ResultLayer | ResultGroup] = []
    if outputs.get("vectors"):
        regions = _vector(vector_uri(outputs["vectors"], "regions"), tr("label regions"))
        if regions.isValid():
            style_label_regions(regions, colours)
        items.append(ResultLayer(regions, True))
        chips = _vector(vector_uri(outputs["vectors"], "chips"), tr("chip labels"))
        if chips.isValid():
            style_chip_labels(chips, colours)
        items.append(ResultLayer(chips, False))
    if classes.isValid():
        style_class_raster(classes, labels)
    items.append(ResultLayer(classes, True))
    return ResultGroup(title, items)


def search_group(title: str, summary: Mapping[str, Any]) -> ResultGroup:
    outputs = summary.get("outputs", {})
    query = summary.get("query") or summary.get("parameters", {}).get("query", "")
    results = _vector(
        vector_uri(outputs.get("results", ""), "results"), tr("search: {query}").format(query=query)
    )
    if results.isValid():
        style_search_results(results)
    return ResultGroup(title, [ResultLayer(results, True)])


def chips_group(title: str, summary: Mapping[str, Any]) -> ResultGroup:
    index = summary.get("outputs", {}).get("index") or ""
    footprints = _vector(vector_uri(index, "chips"), tr("chip footprints"))
    if footprints.isValid():
        style_footprints(footprints)
    return ResultGroup(title, [ResultLayer(footprints, True)])


def annotate_group(title: str, summary: Mapping[str, Any]) -> ResultGroup:
    """A batch run: per query its hotspots (a filtered view of the run GeoPackage) above its heatmap
    mosaic; label regions, chip labels (hidden) and the class mosaic; the scene footprints."""
    outputs = summary.get("outputs", {})
    gpkg = outputs.get("geopackage") or ""
    mosaics = dict(outputs.get("mosaics") or {})
    queries = list(summary.get("queries") or [])
    labels = list(summary.get("labels") or [])
    heatmaps = [path for name, path in mosaics.items() if name.startswith("heatmap_")]
    items: list[ResultLayer | ResultGroup] = []
    for i, query in enumerate(queries):
        per_query: list[ResultLayer | ResultGroup] = []
        hotspots = _vector(
            vector_uri(gpkg, "hotspots", query_filter(query)), tr("hot regions: {query}").format(query=query)
        )
        if hotspots.isValid():
            style_hot_regions(hotspots)
        per_query.append(ResultLayer(hotspots, i == 0))
        if i < len(heatmaps):
            heatmap = QgsRasterLayer(heatmaps[i], tr("heatmap mosaic: {query}").format(query=query), "gdal")
            if heatmap.isValid():
                style_heatmap(heatmap)
            per_query.append(ResultLayer(heatmap, i == 0))
        items.append(ResultGroup(query, per_query))
    if labels:
        classes = QgsRasterLayer(mosaics.get("classes", ""), tr("class mosaic"), "gdal")
        colours = class_colours(classes, labels) if classes.isValid() else {}
        regions = _vector(vector_uri(gpkg, "regions"), tr("label regions"))
        if regions.isValid():
            style_label_regions(regions, colours)
        chips = _vector(vector_uri(gpkg, "chips"), tr("chip labels"))
        if chips.isValid():
            style_chip_labels(chips, colours)
        if classes.isValid():
            style_class_raster(classes, labels)
        class_items = [ResultLayer(regions, True), ResultLayer(chips, False), ResultLayer(classes, True)]
        items.append(ResultGroup(tr("classes"), list(class_items)))
    scenes = _vector(vector_uri(gpkg, "scenes"), tr("scenes"))
    if scenes.isValid():
        style_footprints(scenes)
        label_with(scenes, '"scene" || \' \' || "status"')
    items.append(ResultLayer(scenes, True))
    return ResultGroup(title, items)


def pairs_group(title: str, summary: Mapping[str, Any]) -> ResultGroup:
    """Training pairs: the chip footprints coloured by their label."""
    index = summary.get("outputs", {}).get("index") or ""
    footprints = _vector(vector_uri(index, "pairs"), tr("training chips"))
    if footprints.isValid() and footprints.fields().indexOf("label") >= 0:
        style_categorized(footprints, "label", {}, alpha=LABEL_REGION_FILL_ALPHA)
    return ResultGroup(title, [ResultLayer(footprints, True)])


def no_layers(title: str, summary: Mapping[str, Any]) -> ResultGroup:
    """Jobs whose outputs are not map layers (a fine-tuned adapter)."""
    return ResultGroup(title, [])


GROUP_BUILDERS = {
    "localize": localize_group,
    "classify": classify_group,
    "search": search_group,
    "annotate": annotate_group,
    "pairs": pairs_group,
    "finetune": no_layers,
    "chips": chips_group,
}


def result_group(job: str, title: str, summary: Mapping[str, Any]) -> ResultGroup:
    """The styled layers of one job's summary (``job``: the registry job that wrote it)."""
    return GROUP_BUILDERS.get(job, no_layers)(title, summary)


def add_result_group(
    group: ResultGroup, project: QgsProject | None = None, parent: QgsLayerTreeGroup | None = None
) -> list[QgsMapLayer]:
    """Add the group's valid layers at the top of ``parent`` (the layer tree root by default);
    returns the layers added. Empty groups are not created."""
    project = project or QgsProject.instance()
    parent = parent if parent is not None else project.layerTreeRoot()
    if not any(layer.isValid() for layer in group.layers()):
        return []
    node = parent.insertGroup(0 if parent is project.layerTreeRoot() else len(parent.children()), group.title)
    added: list[QgsMapLayer] = []
    for item in group.items:
        if isinstance(item, ResultGroup):
            added += add_result_group(item, project, node)
        elif item.layer.isValid():
            project.addMapLayer(item.layer, False)
            node.addLayer(item.layer).setItemVisibilityChecked(item.visible)
            added.append(item.layer)
    return added
