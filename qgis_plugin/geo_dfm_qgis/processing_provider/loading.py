"""Loading an algorithm's result layers when Processing asks for it (toolbox, Model Designer,
``processing.runAndLoadResults``), styled as the panel styles them.

``processAlgorithm`` registers every result layer with ``context.addLayerToLoadOnCompletion`` and a
post-processor carrying the style (a :class:`QgsMapLayerStyle` taken from the layer
:mod:`geo_dfm_qgis.layers` styled). Processing loads the layers after the run and calls
``postProcessLayer`` for each: the style is applied, the layer moves into one group per run, in the
panel's order (polygons above rasters), with the panel's initial visibility. ``processing.run`` and
``qgis_process`` load nothing.
"""

from __future__ import annotations

import itertools
import threading

from qgis.core import (
    QgsLayerTreeGroup,
    QgsMapLayerStyle,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
)

from geo_dfm_qgis.layers import ResultGroup

# Processing keeps only a pointer to a post-processor: the Python objects must outlive the run.
_alive: dict[int, StyledLoad] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


class RunGroup:
    """The layer-tree group of one run, created when its first layer arrives; layers keep their rank."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.group: QgsLayerTreeGroup | None = None
        self.ranks: list[int] = []

    def place(self, project: QgsProject, layer_id: str, rank: int, visible: bool) -> None:
        root = project.layerTreeRoot()
        node = root.findLayer(layer_id)
        if node is None:
            return
        if self.group is None or root.findGroup(self.title) is not self.group:
            self.group = root.insertGroup(0, self.title)
            self.ranks = []
        index = sum(1 for r in self.ranks if r < rank)
        moved = node.clone()
        self.group.insertChildNode(index, moved)
        node.parent().removeChildNode(node)
        moved.setItemVisibilityChecked(visible)
        self.ranks.insert(index, rank)


class StyledLoad(QgsProcessingLayerPostProcessorInterface):
    """Applies a saved style to a loaded result layer and files it into its run's group."""

    def __init__(self, style: QgsMapLayerStyle, run: RunGroup, rank: int, visible: bool) -> None:
        super().__init__()
        self.style = style
        self.run = run
        self.rank = rank
        self.visible = visible
        with _lock:
            self.key = next(_ids)
            _alive[self.key] = self

    def postProcessLayer(self, layer, context, feedback) -> None:
        try:
            self.style.writeToLayer(layer)
            layer.triggerRepaint()
            project = context.project() or QgsProject.instance()
            self.run.place(project, layer.id(), self.rank, self.visible)
        finally:
            with _lock:
                _alive.pop(self.key, None)


def load_on_completion(context: QgsProcessingContext, group: ResultGroup) -> int:
    """Ask Processing to load the group's valid layers after the run; returns how many."""
    project = context.project()
    if project is None:
        return 0
    run = RunGroup(group.title)
    count = 0
    for rank, item in enumerate(group.entries()):
        layer = item.layer
        if not layer.isValid():
            continue
        style = QgsMapLayerStyle()
        style.readFromLayer(layer)
        hint = (
            QgsProcessingUtils.LayerHint.Raster
            if isinstance(layer, QgsRasterLayer)
            else QgsProcessingUtils.LayerHint.Vector
        )
        details = QgsProcessingContext.LayerDetails(layer.name(), project, "", hint)
        details.setPostProcessor(StyledLoad(style, run, rank, item.visible))
        context.addLayerToLoadOnCompletion(layer.source(), details)
        count += 1
    return count
