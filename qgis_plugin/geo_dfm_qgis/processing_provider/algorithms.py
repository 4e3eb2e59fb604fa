"""Processing algorithms: each builds a geo-dfm command line, runs it once with ``--progress jsonl``
(progress and cancel through the feedback) and returns the output paths from the job's summary."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from geo_dfm_qgis import settings
from geo_dfm_qgis.jobs import LABEL_PRESETS, ChipChoice, ModelChoice, split_lines
from geo_dfm_qgis.worker_client import WorkerError, run_once


class GeoDfmAlgorithm(QgsProcessingAlgorithm):
    """Shared parameters (model, chipping) and the one-shot run of the geo-dfm CLI."""

    command = ""

    def createInstance(self):
        return type(self)()

    def name(self) -> str:
        return self.command

    def group(self) -> str:
        return ""

    def groupId(self) -> str:
        return ""

    # --- parameters ---------------------------------------------------------------------------
    def _advanced(self, parameter: QgsProcessingParameterDefinition) -> None:
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(parameter)

    def add_model_parameters(self) -> None:
        self.addParameter(
            QgsProcessingParameterString(
                "MODEL", "Model (registry name or open_clip architecture; empty = default)", "", optional=True
            )
        )
        self._advanced(
            QgsProcessingParameterFile(
                "WEIGHTS",
                "Custom weights (.pt/.pth/.safetensors)",
                optional=True,
                fileFilter="Checkpoints (*.pt *.pth *.bin *.safetensors)",
            )
        )
        self._advanced(
            QgsProcessingParameterFile(
                "ADAPTER", "Adapter folder (peft)", QgsProcessingParameterFile.Behavior.Folder, optional=True
            )
        )
        self._advanced(
            QgsProcessingParameterString("DEVICE", "Device (auto, cpu, cuda, cuda:N, mps)", "auto")
        )

    def add_chip_parameters(
        self, size_label: str = "Chip size (224 px or 100m; empty = model input size)"
    ) -> None:
        self.addParameter(QgsProcessingParameterString("CHIP_SIZE", size_label, "", optional=True))
        self.addParameter(
            QgsProcessingParameterString("OVERLAP", "Overlap (0.25, 25%, 32px or 10m)", "0.25", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "GSD",
                "Resample to this GSD (m/px; 0 = native)",
                QgsProcessingParameterNumber.Type.Double,
                0.0,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (area of interest)", optional=True))

    def model_argv(self, parameters: dict[str, Any], context) -> list[str]:
        return ModelChoice(
            name=self.parameterAsString(parameters, "MODEL", context).strip(),
            weights=self.parameterAsFile(parameters, "WEIGHTS", context),
            adapter=self.parameterAsFile(parameters, "ADAPTER", context),
            device=self.parameterAsString(parameters, "DEVICE", context).strip() or "auto",
        ).argv()

    def chip_argv(self, parameters: dict[str, Any], context, layer: QgsRasterLayer) -> list[str]:
        aoi = ""
        if parameters.get("EXTENT") not in (None, ""):
            extent = self.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
            if not extent.isNull() and not extent.isEmpty():
                aoi = ",".join(
                    repr(v)
                    for v in (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
                )
        return ChipChoice(
            chip_size=self.parameterAsString(parameters, "CHIP_SIZE", context),
            overlap=self.parameterAsString(parameters, "OVERLAP", context),
            gsd=self.parameterAsDouble(parameters, "GSD", context) or None,
            aoi=aoi,
        ).argv()

    def scene(self, parameters: dict[str, Any], name: str, context) -> QgsRasterLayer:
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        return self.check_file_layer(layer)

    @staticmethod
    def check_file_layer(layer: QgsRasterLayer) -> QgsRasterLayer:
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{layer.name()}: geo-dfm reads raster files; save this {layer.providerType()} layer "
                "to a GeoTIFF first (Export → Save As)"
            )
        return layer

    @staticmethod
    def output_folder(path: str) -> list[str]:
        """``-o`` for a folder output; an empty folder or a previous geo-dfm output may be replaced."""
        previous_output = os.path.exists(os.path.join(path, "summary.json"))
        if os.path.isdir(path) and os.listdir(path) and not previous_output:
            raise QgsProcessingException(
                f"{path}: the output folder is not empty; choose a new or empty folder"
            )
        return ["-o", path, *(["--overwrite"] if os.path.exists(path) else [])]

    # --- running ------------------------------------------------------------------------------
    def run_geo_dfm(self, argv: list[str], feedback) -> dict[str, Any]:
        """Run ``geo-dfm <argv> --progress jsonl``; returns the summary, raises on failure."""
        try:
            command = settings.geo_dfm_command()
        except WorkerError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushCommandInfo(" ".join([*command, *argv]))

        def on_event(event: dict[str, Any]) -> None:
            kind = event.get("event")
            if kind == "progress" and event.get("fraction") is not None:
                feedback.setProgress(100.0 * float(event["fraction"]))
            elif kind == "stage":
                feedback.setProgressText(str(event.get("stage", "")))
            elif kind == "log":
                feedback.pushInfo(f"{event.get('level', '')}: {event.get('message', '')}")

        try:
            outcome = run_once(command, ["-v", *argv, "--progress", "jsonl"], on_event, feedback.isCanceled)
        except WorkerError as exc:
            raise QgsProcessingException(str(exc)) from exc
        if outcome.cancelled:
            feedback.pushInfo("cancelled")
            return {}
        if not outcome.ok:
            raise QgsProcessingException(f"geo-dfm failed (exit code {outcome.code}): {outcome.message}")
        return outcome.summary or {}


class LocalizeAlgorithm(GeoDfmAlgorithm):
    command = "localize"

    def displayName(self) -> str:
        return "Localize (text-query heatmaps)"

    def shortHelpString(self) -> str:
        return (
            "Semantic localization: one heatmap (COG, band 1 normalised score, band 2 mean cosine "
            "similarity) per text query, plus polygons of the hot regions. Queries: one per line."
        )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        self.addParameter(QgsProcessingParameterString("QUERIES", "Queries (one per line)", multiLine=True))
        self.addParameter(
            QgsProcessingParameterNumber(
                "REGION_THRESHOLD",
                "Region threshold (normalised score)",
                QgsProcessingParameterNumber.Type.Double,
                0.5,
                minValue=0.0,
                maxValue=1.0,
            )
        )
        self.add_model_parameters()
        self.add_chip_parameters()
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer("HEATMAP", "Heatmap (first query)"))
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "REGIONS", "Hot regions", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputFile("SUMMARY", "Summary (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.scene(parameters, "INPUT", context)
        queries = split_lines(self.parameterAsString(parameters, "QUERIES", context))
        if not queries:
            raise QgsProcessingException("Queries: give at least one query")
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        threshold = self.parameterAsDouble(parameters, "REGION_THRESHOLD", context)
        argv = [
            "localize",
            layer.source(),
            *queries,
            *self.output_folder(output),
            "--region-threshold",
            repr(threshold),
            *self.chip_argv(parameters, context, layer),
            *self.model_argv(parameters, context),
        ]
        summary = self.run_geo_dfm(argv, feedback)
        if not summary:
            return {}
        outputs = summary["outputs"]
        heatmaps = list(outputs.get("heatmaps", {}).values())
        return {
            "OUTPUT": output,
            "HEATMAP": heatmaps[0] if heatmaps else None,
            "REGIONS": f"{outputs['regions']}|layername=regions" if outputs.get("regions") else None,
            "SUMMARY": outputs.get("summary"),
        }


class ClassifyAlgorithm(GeoDfmAlgorithm):
    command = "classify"
    PRESETS = ("(labels below)", *LABEL_PRESETS)

    def displayName(self) -> str:
        return "Classify (zero-shot labels)"

    def shortHelpString(self) -> str:
        return (
            "Zero-shot land-cover label for every chip: a class raster with a colour table, class "
            "probabilities and label polygons. Give labels (comma-separated or one per line) or a preset."
        )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        self.addParameter(
            QgsProcessingParameterString(
                "LABELS", "Labels (comma-separated or one per line)", multiLine=True, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum("PRESET", "Label preset", list(self.PRESETS), defaultValue=0)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MIN_CONFIDENCE",
                "Minimum confidence (below: unlabelled)",
                QgsProcessingParameterNumber.Type.Double,
                0.0,
                minValue=0.0,
                maxValue=1.0,
            )
        )
        self.add_model_parameters()
        self.add_chip_parameters()
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer("CLASSES", "Class raster"))
        self.addOutput(QgsProcessingOutputRasterLayer("PROBABILITIES", "Class probabilities"))
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "REGIONS", "Label regions", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(
            QgsProcessingOutputVectorLayer("CHIPS", "Chip labels", QgsProcessing.SourceType.TypeVectorPolygon)
        )
        self.addOutput(QgsProcessingOutputFile("SUMMARY", "Summary (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.scene(parameters, "INPUT", context)
        text = self.parameterAsString(parameters, "LABELS", context)
        labels = [label.strip() for line in split_lines(text) for label in line.split(",") if label.strip()]
        preset_index = self.parameterAsEnum(parameters, "PRESET", context)
        if preset_index > 0:
            texts = ["--preset", self.PRESETS[preset_index]]
        elif len(labels) >= 2:
            texts = ["--labels", ",".join(labels)]
        else:
            raise QgsProcessingException("Labels: give at least two labels or choose a preset")
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        argv = [
            "classify",
            layer.source(),
            *self.output_folder(output),
            *texts,
            "--min-confidence",
            repr(self.parameterAsDouble(parameters, "MIN_CONFIDENCE", context)),
            *self.chip_argv(parameters, context, layer),
            *self.model_argv(parameters, context),
        ]
        summary = self.run_geo_dfm(argv, feedback)
        if not summary:
            return {}
        outputs = summary["outputs"]
        vectors = outputs.get("vectors")
        return {
            "OUTPUT": output,
            "CLASSES": outputs.get("classes"),
            "PROBABILITIES": outputs.get("probabilities"),
            "REGIONS": f"{vectors}|layername=regions" if vectors else None,
            "CHIPS": f"{vectors}|layername=chips" if vectors else None,
            "SUMMARY": outputs.get("summary"),
        }


class SearchAlgorithm(GeoDfmAlgorithm):
    command = "search"

    def displayName(self) -> str:
        return "Search (text-to-image retrieval)"

    def shortHelpString(self) -> str:
        return (
            "Finds the chips of one or more scenes that best match a text query and writes their "
            "footprints (rank, scene, score) to a GeoPackage. Chip embeddings are kept in an index "
            "beside the output and reused by later searches."
        )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterMultipleLayers("INPUTS", "Scenes", QgsProcessing.SourceType.TypeRaster)
        )
        self.addParameter(QgsProcessingParameterString("QUERY", "Query"))
        self.addParameter(
            QgsProcessingParameterNumber(
                "TOP_K", "Number of results", QgsProcessingParameterNumber.Type.Integer, 20, minValue=1
            )
        )
        self.add_model_parameters()
        self.add_chip_parameters()
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Results", "GeoPackage (*.gpkg)"))
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "RESULTS", "Search results", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputFile("INDEX", "Embedding index"))

    def processAlgorithm(self, parameters, context, feedback):
        layers = [
            self.check_file_layer(layer) for layer in self.parameterAsLayerList(parameters, "INPUTS", context)
        ]
        if not layers:
            raise QgsProcessingException("Scenes: choose at least one raster layer")
        query = self.parameterAsString(parameters, "QUERY", context).strip()
        if not query:
            raise QgsProcessingException("Query: type what to search for")
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        argv = [
            "search",
            *(layer.source() for layer in layers),
            query,
            "-o",
            output,
            *(["--overwrite"] if os.path.exists(output) else []),
            "--top-k",
            str(self.parameterAsInt(parameters, "TOP_K", context)),
            *self.chip_argv(parameters, context, layers[0]),
            *self.model_argv(parameters, context),
        ]
        summary = self.run_geo_dfm(argv, feedback)
        if not summary:
            return {}
        outputs = summary["outputs"]
        return {
            "OUTPUT": outputs.get("results", output),
            "RESULTS": f"{outputs.get('results', output)}|layername=results",
            "INDEX": outputs.get("index"),
        }


class ChipSceneAlgorithm(GeoDfmAlgorithm):
    command = "chips"

    def displayName(self) -> str:
        return "Chip scene"

    def shortHelpString(self) -> str:
        return "Cuts a scene into georeferenced chips (GeoTIFF) and writes an index GeoPackage of their footprints."

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Scene"))
        self.add_chip_parameters("Chip size (224 px or 100m)")
        self.parameterDefinition("CHIP_SIZE").setDefaultValue("224")
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Output folder"))
        self.addOutput(QgsProcessingOutputFolder("CHIPS", "Chips folder"))
        self.addOutput(
            QgsProcessingOutputVectorLayer("INDEX", "Chip index", QgsProcessing.SourceType.TypeVectorPolygon)
        )

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.scene(parameters, "INPUT", context)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        argv = [
            "chips",
            layer.source(),
            *self.output_folder(output),
            *self.chip_argv(parameters, context, layer),
        ]
        summary = self.run_geo_dfm(argv, feedback)
        if not summary:
            return {}
        outputs = summary.get("outputs", {})
        return {"OUTPUT": output, "CHIPS": outputs.get("chips", output), "INDEX": outputs.get("index")}
