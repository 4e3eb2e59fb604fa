"""The geo-dfm Processing provider."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from geo_dfm_qgis.processing_provider.algorithms import (
    AnnotateAlgorithm,
    ChipSceneAlgorithm,
    ClassifyAlgorithm,
    FinetuneAlgorithm,
    LocalizeAlgorithm,
    SearchAlgorithm,
)

ICON_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "icon.png")


class GeoDfmProvider(QgsProcessingProvider):
    """Localize, Classify, Search, Annotate, Fine-tune and Chip scene, each running the geo-dfm CLI out of
    process."""

    def id(self) -> str:
        return "geodfm"

    def name(self) -> str:
        return "geo-dfm"

    def longName(self) -> str:
        return "geo-dfm (remote-sensing foundation models)"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def loadAlgorithms(self) -> None:
        for algorithm in (
            LocalizeAlgorithm(),
            ClassifyAlgorithm(),
            SearchAlgorithm(),
            AnnotateAlgorithm(),
            FinetuneAlgorithm(),
            ChipSceneAlgorithm(),
        ):
            self.addAlgorithm(algorithm)
