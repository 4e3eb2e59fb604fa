"""Processing algorithms: each builds a :class:`~geo_dfm_qgis.jobs.JobSpec`, runs geo-dfm once with
``--progress jsonl`` (progress and cancel through the feedback), returns the output paths from the
job's summary and has Processing load the styled result layers where it loads results.

Choices (methods, presets, models) come from the capabilities the last geo-dfm worker reported, as
static strings: ``PRESET=landcover``, ``METHOD=selo``, ``MODEL=toy`` work in ``processing.run`` and
``qgis_process``. A cancelled run raises, so ``qgis_process`` exits non-zero.
"""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsRasterLayer,
)

from geo_dfm_qgis import settings
from geo_dfm_qgis.i18n import tr
from geo_dfm_qgis.jobs import ChipChoice, JobSpec, ModelChoice, split_labels, split_lines
from geo_dfm_qgis.layers import result_group
from geo_dfm_qgis.links import help_url
from geo_dfm_qgis.processing_provider.loading import load_on_completion
from geo_dfm_qgis.sources import bands_text, folder_rasters, layer_problem, shown_bands, vector_file
from geo_dfm_qgis.worker_client import WorkerError, run_once

GROUPS = {
    "maps": "Maps from text",
    "retrieval": "Retrieval",
    "preparation": "Data preparation",
    "batch": "Batch processing",
    "training": "Training",
}


class GeoDfmAlgorithm(QgsProcessingAlgorithm):
    """Shared parameters (model, chipping), the one-shot run of the geo-dfm CLI, result loading."""

    job = ""
    group_key = "maps"

    def __init__(self) -> None:
        super().__init__()
        self.capabilities = settings.capabilities()

    def createInstance(self):
        return type(self)()

    def name(self) -> str:
        return self.job

    def group(self) -> str:
        return tr(GROUPS[self.group_key])

    def groupId(self) -> str:
        return self.group_key

    def helpUrl(self) -> str:
        return help_url(f"processing-{self.job}")

    # --- parameters ---------------------------------------------------------------------------
    def add(
        self, parameter: QgsProcessingParameterDefinition, help_text: str = "", advanced: bool = False
    ) -> None:
        """Add a parameter with its help text (shown in the algorithm dialog and ``qgis_process help``)."""
        parameter.setHelp(help_text or parameter.description())
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(parameter)

    def choice(
        self, name: str, description: str, options: tuple, default: str | None, help_text: str
    ) -> None:
        """An enum whose values are its option strings (``PRESET=landcover``)."""
        options = [str(o) for o in options]
        parameter = QgsProcessingParameterEnum(
            name,
            description,
            options,
            allowMultiple=False,
            defaultValue=default if default in options else None,
            optional=default is None or default not in options,
            usesStaticStrings=True,
        )
        self.add(parameter, help_text)

    def add_model_parameters(self) -> None:
        names = self.capabilities.model_names
        default = settings.default_model() or None
        self.choice(
            "MODEL",
            tr("Model"),
            names,
            default,
            tr(
                "A registered model (geo-dfm models list). Empty: geo-dfm's default model. Models: {names}."
            ).format(names=", ".join(names)),
        )
        self.add(
            QgsProcessingParameterString(
                "ARCHITECTURE", tr("open_clip architecture (instead of Model)"), "", optional=True
            ),
            tr("For custom weights of an architecture that is not registered, e.g. ViT-B-32."),
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFile(
                "WEIGHTS",
                tr("Custom weights (.pt/.pth/.safetensors)"),
                optional=True,
                fileFilter="Checkpoints (*.pt *.pth *.bin *.safetensors)",
            ),
            tr("A checkpoint file for the model or architecture."),
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFile(
                "ADAPTER",
                tr("Adapter folder (peft)"),
                QgsProcessingParameterFile.Behavior.Folder,
                optional=True,
            ),
            tr("A fine-tuned adapter applied on top of the model."),
            advanced=True,
        )
        self.add(
            QgsProcessingParameterString("DEVICE", tr("Device"), "auto"),
            tr("Where the model runs: auto, cpu, cuda, cuda:N or mps."),
            advanced=True,
        )

    def add_chip_parameters(self, size_default: str = "", multiple_inputs: bool = False) -> None:
        caps, job = self.capabilities, self.job
        self.add(
            QgsProcessingParameterString("CHIP_SIZE", tr("Chip size"), size_default, optional=True),
            caps.help(job, "chips.chip_size")
            or tr("Pixels (224) or metres (100m); empty = the model's input size."),
        )
        self.add(
            QgsProcessingParameterString("OVERLAP", tr("Overlap"), "0.25", optional=True),
            caps.help(job, "chips.overlap")
            or tr("Fraction (0.25), percent (25%), pixels (32px) or metres (10m)."),
        )
        self.add(
            QgsProcessingParameterNumber(
                "GSD",
                tr("Resample to this GSD (m/px; 0 = native)"),
                QgsProcessingParameterNumber.Type.Double,
                0.0,
                optional=True,
                minValue=0.0,
            ),
            caps.help(job, "chips.gsd") or tr("Ground resolution the scene is resampled to first."),
        )
        bands_help = tr(
            "The bands the model sees as red, green, blue (or one band as grey). Empty: the bands the "
            "project layer's style shows, else geo-dfm's choice (colour interpretation, else 1, 2, 3)."
        )
        if multiple_inputs:
            self.add(
                QgsProcessingParameterString("BANDS", tr("Bands (R,G,B)"), "", optional=True), bands_help
            )
        else:
            self.add(
                QgsProcessingParameterBand(
                    "BANDS", tr("Bands (R, G, B)"), None, "INPUT", optional=True, allowMultiple=True
                ),
                bands_help,
            )
        self.add(
            QgsProcessingParameterExtent("EXTENT", tr("Extent (area of interest)"), optional=True),
            tr("Only chips inside this extent are processed (any CRS; reprojected to the scene)."),
        )

    def model_choice(self, parameters: dict[str, Any], context) -> ModelChoice:
        architecture = self.parameterAsString(parameters, "ARCHITECTURE", context).strip()
        return ModelChoice(
            name=architecture or self.parameterAsEnumString(parameters, "MODEL", context),
            weights=self.parameterAsFile(parameters, "WEIGHTS", context),
            adapter=self.parameterAsFile(parameters, "ADAPTER", context),
            device=self.parameterAsString(parameters, "DEVICE", context).strip() or "auto",
        )

    def chip_choice(
        self, parameters: dict[str, Any], context, layer: QgsRasterLayer | None, chip_size: str = ""
    ) -> ChipChoice:
        """Chip parameters; the extent in ``layer``'s CRS (no layer: in its own CRS, spelled ``@EPSG:…``)."""
        aoi = ""
        if parameters.get("EXTENT") not in (None, ""):
            crs = (
                layer.crs() if layer is not None else self.parameterAsExtentCrs(parameters, "EXTENT", context)
            )
            extent = self.parameterAsExtent(parameters, "EXTENT", context, crs)
            if not extent.isNull() and not extent.isEmpty():
                aoi = ",".join(
                    repr(v)
                    for v in (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
                )
                if layer is None and crs.authid():
                    aoi += f"@{crs.authid()}"
        return ChipChoice(
            chip_size=chip_size or self.parameterAsString(parameters, "CHIP_SIZE", context),
            overlap=self.parameterAsString(parameters, "OVERLAP", context),
            gsd=self.parameterAsDouble(parameters, "GSD", context) or None,
            bands=self.bands(parameters, context, layer),
            aoi=aoi,
        )

    def bands(self, parameters: dict[str, Any], context, layer: QgsRasterLayer | None) -> str:
        definition = self.parameterDefinition("BANDS")
        if isinstance(definition, QgsProcessingParameterBand):
            chosen = tuple(self.parameterAsInts(parameters, "BANDS", context))
        else:
            text = self.parameterAsString(parameters, "BANDS", context)
            try:
                chosen = tuple(int(part) for part in text.split(",") if part.strip())
            except ValueError:
                raise QgsProcessingException(tr("Bands: give band numbers, e.g. 4,3,2")) from None
        if chosen and len(chosen) not in (1, 3):
            raise QgsProcessingException(tr("Bands: choose one band (grey) or three (red, green, blue)"))
        project = context.project()
        if not chosen and layer is not None and project is not None and project.mapLayer(layer.id()) is layer:
            chosen = shown_bands(layer)  # a project layer: what its style shows
        return bands_text(chosen)

    def scene(self, parameters: dict[str, Any], name: str, context) -> QgsRasterLayer:
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        return self.check_file_layer(layer)

    @staticmethod
    def check_file_layer(layer: QgsRasterLayer) -> QgsRasterLayer:
        problem = layer_problem(layer)
        if problem:
            raise QgsProcessingException(problem)
        return layer

    @staticmethod
    def may_replace(path: str) -> bool:
        """Whether geo-dfm may replace ``path``: absent, an empty folder, or an earlier geo-dfm output."""
        if not os.path.exists(path):
            return False
        if (
            os.path.isdir(path)
            and os.listdir(path)
            and not os.path.exists(os.path.join(path, "summary.json"))
        ):
            raise QgsProcessingException(
                tr("{path}: the output folder is not empty; choose a new or empty folder").format(path=path)
            )
        return True

    # --- running ------------------------------------------------------------------------------
    def run_geo_dfm(self, spec: JobSpec, feedback) -> list[dict[str, Any]]:
        """Run every call of ``spec``; returns their summaries, raises on failure or cancel."""
        try:
            command = settings.geo_dfm_command()
        except WorkerError as exc:
            raise QgsProcessingException(str(exc)) from exc
        calls = spec.calls()
        summaries = []
        for index, call in enumerate(calls):
            argv = ["-v", *call.argv, "--progress", "jsonl"]
            feedback.pushCommandInfo(" ".join([*command, *argv]))

            def on_event(event: dict[str, Any], index: int = index) -> None:
                kind = event.get("event")
                if kind == "progress" and event.get("fraction") is not None:
                    feedback.setProgress(100.0 * (index + float(event["fraction"])) / len(calls))
                elif kind == "stage":
                    feedback.setProgressText(str(event.get("stage", "")))
                elif kind == "log":
                    feedback.pushInfo(f"{event.get('level', '')}: {event.get('message', '')}")

            try:
                outcome = run_once(command, argv, on_event, feedback.isCanceled)
            except WorkerError as exc:
                raise QgsProcessingException(str(exc)) from exc
            if outcome.cancelled:
                raise QgsProcessingException(tr("Cancelled: geo-dfm stopped and removed its partial output."))
            if not outcome.ok:
                raise QgsProcessingException(
                    tr("geo-dfm failed (exit code {code}): {message}").format(
                        code=outcome.code, message=outcome.message
                    )
                )
            summaries.append(outcome.summary or {})
        return summaries

    def load_results(self, context, title: str, summary: dict[str, Any], job: str = "") -> None:
        """Styled result layers for Processing to load after the run (where it loads results)."""
        load_on_completion(context, result_group(job or self.job, title, summary))

    def method(self, parameters: dict[str, Any], context) -> str:
        return (
            self.parameterAsEnumString(parameters, "METHOD", context)
            if self.parameterDefinition("METHOD")
            else ""
        )

    def add_method(self, job: str, fallback_help: str) -> None:
        """METHOD with the choices the registry gives ``job`` (none: no parameter)."""
        methods = self.capabilities.choices(job, "method")
        if methods:
            self.choice(
                "METHOD",
                tr("Method"),
                methods,
                str(methods[0]),
                self.capabilities.help(job, "method") or fallback_help,
            )

    def add_labels_and_preset(self) -> None:
        self.add(
            QgsProcessingParameterString(
                "LABELS", tr("Labels (comma-separated or one per line)"), multiLine=True, optional=True
            ),
            tr("Your classes, e.g. water, forest, town (at least two), or leave empty and choose a preset."),
        )
        preset_help = "; ".join(
            f"{name}: {', '.join(labels[:6])}{'…' if len(labels) > 6 else ''}" if labels else name
            for name, labels in self.capabilities.presets.items()
        )
        self.choice(
            "PRESET",
            tr("Label preset"),
            self.capabilities.preset_names,
            None,
            tr("A ready-made class list: {p}").format(p=preset_help),
        )


class LocalizeAlgorithm(GeoDfmAlgorithm):
    job = "localize"

    def displayName(self) -> str:
        return tr("Localize (text-query heatmaps)")

    def shortHelpString(self) -> str:
        return tr(
            "Semantic localization: one heatmap per text query (COG; band 1 normalised score 0–1, band 2 "
            "mean cosine similarity) and polygons of the hot regions. Queries: one per line. The layers "
            "load styled: a colour ramp fading low scores to transparent, one hot-region layer per query."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add(
            QgsProcessingParameterRasterLayer("INPUT", tr("Scene")), tr("The raster to analyse (a file).")
        )
        self.add(
            QgsProcessingParameterString("QUERIES", tr("Queries (one per line)"), multiLine=True),
            tr("What to look for, e.g. 'airport runway'; one heatmap per line."),
        )
        self.add_method(
            "localize", tr("blend: georeferenced chips blended with weights; selo: the reference SeLo map.")
        )
        self.add(
            QgsProcessingParameterNumber(
                "REGION_THRESHOLD",
                tr("Region threshold (normalised score)"),
                QgsProcessingParameterNumber.Type.Double,
                0.5,
                minValue=0.0,
                maxValue=1.0,
            ),
            tr("Pixels scoring above this form the hot regions."),
        )
        self.add_model_parameters()
        self.add_chip_parameters()
        self.add(
            QgsProcessingParameterFolderDestination("OUTPUT", tr("Output folder")),
            tr("Where geo-dfm writes."),
        )
        self.addOutput(QgsProcessingOutputRasterLayer("HEATMAP", tr("Heatmap (first query)")))
        self.addOutput(QgsProcessingOutputMultipleLayers("HEATMAPS", tr("Heatmaps (one per query)")))
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "REGIONS", tr("Hot regions"), QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputFile("SUMMARY", tr("Summary (JSON)")))

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.scene(parameters, "INPUT", context)
        queries = split_lines(self.parameterAsString(parameters, "QUERIES", context))
        if not queries:
            raise QgsProcessingException(tr("Queries: give at least one query"))
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        spec = JobSpec(
            mode="localize",
            scenes=(layer.source(),),
            output=output,
            queries=queries,
            method=self.method(parameters, context),
            region_threshold=self.parameterAsDouble(parameters, "REGION_THRESHOLD", context),
            overwrite=self.may_replace(output),
            model=self.model_choice(parameters, context),
            chips=self.chip_choice(parameters, context, layer),
        )
        (summary,) = self.run_geo_dfm(spec, feedback)
        outputs = summary["outputs"]
        heatmaps = list(outputs.get("heatmaps", {}).values())
        regions = f"{outputs['regions']}|layername=regions" if outputs.get("regions") else None
        self.load_results(context, tr("geo-dfm localize: {q}").format(q=", ".join(queries)), summary)
        return {
            "OUTPUT": output,
            "HEATMAP": heatmaps[0] if heatmaps else None,
            "HEATMAPS": heatmaps,
            "REGIONS": regions,
            "SUMMARY": outputs.get("summary"),
        }


class ClassifyAlgorithm(GeoDfmAlgorithm):
    job = "classify"

    def displayName(self) -> str:
        return tr("Classify (zero-shot labels)")

    def shortHelpString(self) -> str:
        return tr(
            "Zero-shot label for every chip: a class raster with a colour table, class probabilities and "
            "label polygons. Give labels (comma-separated or one per line) or a preset. The layers load "
            "styled: the class raster semi-transparent under labelled region polygons."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add(
            QgsProcessingParameterRasterLayer("INPUT", tr("Scene")), tr("The raster to classify (a file).")
        )
        self.add_labels_and_preset()
        self.add_method("classify", tr("blend: chip probabilities; dense: patch-level segmentation."))
        self.add(
            QgsProcessingParameterNumber(
                "MIN_CONFIDENCE",
                tr("Minimum confidence (below: unlabelled)"),
                QgsProcessingParameterNumber.Type.Double,
                0.0,
                minValue=0.0,
                maxValue=1.0,
            ),
            tr("Chips whose best class probability is lower stay unlabelled."),
        )
        self.add_model_parameters()
        self.add_chip_parameters()
        self.add(
            QgsProcessingParameterFolderDestination("OUTPUT", tr("Output folder")),
            tr("Where geo-dfm writes."),
        )
        self.addOutput(QgsProcessingOutputRasterLayer("CLASSES", tr("Class raster")))
        self.addOutput(QgsProcessingOutputRasterLayer("PROBABILITIES", tr("Class probabilities")))
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "REGIONS", tr("Label regions"), QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "CHIPS", tr("Chip labels"), QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputFile("SUMMARY", tr("Summary (JSON)")))

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.scene(parameters, "INPUT", context)
        labels = split_labels(self.parameterAsString(parameters, "LABELS", context))
        preset = self.parameterAsEnumString(parameters, "PRESET", context)
        if not preset and len(labels) < 2:
            raise QgsProcessingException(tr("Labels: give at least two labels or choose a preset"))
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        spec = JobSpec(
            mode="classify",
            scenes=(layer.source(),),
            output=output,
            labels=() if preset else labels,
            preset=preset,
            method=self.method(parameters, context),
            min_confidence=self.parameterAsDouble(parameters, "MIN_CONFIDENCE", context),
            overwrite=self.may_replace(output),
            model=self.model_choice(parameters, context),
            chips=self.chip_choice(parameters, context, layer),
        )
        (summary,) = self.run_geo_dfm(spec, feedback)
        outputs = summary["outputs"]
        vectors = outputs.get("vectors")
        self.load_results(context, tr("geo-dfm classify: {t}").format(t=preset or ", ".join(labels)), summary)
        return {
            "OUTPUT": output,
            "CLASSES": outputs.get("classes"),
            "PROBABILITIES": outputs.get("probabilities"),
            "REGIONS": f"{vectors}|layername=regions" if vectors else None,
            "CHIPS": f"{vectors}|layername=chips" if vectors else None,
            "SUMMARY": outputs.get("summary"),
        }


class SearchAlgorithm(GeoDfmAlgorithm):
    job = "search"
    group_key = "retrieval"

    def displayName(self) -> str:
        return tr("Search (text-to-image retrieval)")

    def shortHelpString(self) -> str:
        return tr(
            "Finds the chips of one or more scenes that best match a text query and writes their "
            "footprints (rank, scene, score) to a GeoPackage; they load as ranked footprints labelled "
            "'#rank score'. Chip embeddings are kept in an index beside the output and reused."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add(
            QgsProcessingParameterMultipleLayers("INPUTS", tr("Scenes"), QgsProcessing.SourceType.TypeRaster),
            tr("The rasters to search (files)."),
        )
        self.add(
            QgsProcessingParameterString("QUERY", tr("Query")),
            tr("What to find, e.g. 'a harbour with boats'."),
        )
        self.add(
            QgsProcessingParameterNumber(
                "TOP_K", tr("Number of results"), QgsProcessingParameterNumber.Type.Integer, 20, minValue=1
            ),
            tr("How many best-matching chips to return."),
        )
        self.add_model_parameters()
        self.add_chip_parameters(multiple_inputs=True)
        self.add(
            QgsProcessingParameterFileDestination("OUTPUT", tr("Results"), "GeoPackage (*.gpkg)"),
            tr("The GeoPackage of result footprints."),
        )
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "RESULTS", tr("Search results"), QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputFolder("INDEX", tr("Embedding index (folder)")))

    def processAlgorithm(self, parameters, context, feedback):
        layers = [
            self.check_file_layer(layer) for layer in self.parameterAsLayerList(parameters, "INPUTS", context)
        ]
        if not layers:
            raise QgsProcessingException(tr("Scenes: choose at least one raster layer"))
        query = self.parameterAsString(parameters, "QUERY", context).strip()
        if not query:
            raise QgsProcessingException(tr("Query: type what to search for"))
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        spec = JobSpec(
            mode="search",
            scenes=tuple(layer.source() for layer in layers),
            output=output,
            queries=(query,),
            top_k=self.parameterAsInt(parameters, "TOP_K", context),
            overwrite=os.path.exists(output),
            search_file=True,
            model=self.model_choice(parameters, context),
            chips=self.chip_choice(parameters, context, layers[0]),
        )
        (summary,) = self.run_geo_dfm(spec, feedback)
        outputs = summary["outputs"]
        results = outputs.get("results", output)
        self.load_results(context, tr("geo-dfm search: {q}").format(q=query), {**summary, "query": query})
        return {"OUTPUT": results, "RESULTS": f"{results}|layername=results", "INDEX": outputs.get("index")}


class ChipSceneAlgorithm(GeoDfmAlgorithm):
    job = "chips"
    group_key = "preparation"

    def displayName(self) -> str:
        return tr("Chip scene")

    def shortHelpString(self) -> str:
        return tr(
            "Cuts a scene into georeferenced chips (GeoTIFF) and writes an index GeoPackage of their "
            "footprints, which loads as outlines."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add(QgsProcessingParameterRasterLayer("INPUT", tr("Scene")), tr("The raster to cut (a file)."))
        self.add_chip_parameters(size_default="224")
        self.add(
            QgsProcessingParameterFolderDestination("OUTPUT", tr("Output folder")),
            tr("Where geo-dfm writes."),
        )
        self.addOutput(QgsProcessingOutputFolder("CHIPS", tr("Chips folder")))
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "INDEX", tr("Chip index"), QgsProcessing.SourceType.TypeVectorPolygon
            )
        )

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.scene(parameters, "INPUT", context)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        spec = JobSpec(
            mode="chips",
            scenes=(layer.source(),),
            output=output,
            overwrite=self.may_replace(output),
            chips=self.chip_choice(parameters, context, layer),
        )
        (summary,) = self.run_geo_dfm(spec, feedback)
        outputs = summary.get("outputs", {})
        self.load_results(context, tr("geo-dfm chips: {name}").format(name=layer.name()), summary)
        return {"OUTPUT": output, "CHIPS": outputs.get("chips", output), "INDEX": outputs.get("index")}


class AnnotateAlgorithm(GeoDfmAlgorithm):
    job = "annotate"
    group_key = "batch"

    def displayName(self) -> str:
        return tr("Annotate many scenes (batch)")

    def shortHelpString(self) -> str:
        return tr(
            "Classifies (labels or a preset) and/or localizes (queries) every scene — raster layers and the "
            "rasters of a folder — in one resumable run. Writes annotations.gpkg (chips, regions, hotspots, "
            "scenes) and one mosaic per output kind; they load styled as the single-scene results."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add(
            QgsProcessingParameterMultipleLayers(
                "INPUTS", tr("Scenes"), QgsProcessing.SourceType.TypeRaster, optional=True
            ),
            tr("Raster layers to annotate (files)."),
        )
        self.add(
            QgsProcessingParameterFile(
                "FOLDER", tr("Folder of scenes"), QgsProcessingParameterFile.Behavior.Folder, optional=True
            ),
            tr("Every raster file in this folder (GeoTIFF, VRT, JPEG2000…) is annotated too."),
        )
        self.add(
            QgsProcessingParameterString(
                "QUERIES", tr("Queries (one per line)"), multiLine=True, optional=True
            ),
            tr("Texts to localize in every scene; one heatmap mosaic each."),
        )
        self.add_labels_and_preset()
        self.add_method("annotate", tr("localize: blend or selo."))
        self.add_model_parameters()
        self.add_chip_parameters(multiple_inputs=True)
        self.add(
            QgsProcessingParameterFolderDestination("OUTPUT", tr("Output folder")),
            tr("The run folder (an earlier run there is resumed only from the command line)."),
        )
        self.addOutput(QgsProcessingOutputFile("GEOPACKAGE", tr("Run GeoPackage")))
        for name, title in (("HOTSPOTS", "Hot regions"), ("REGIONS", "Label regions"), ("SCENES", "Scenes")):
            self.addOutput(
                QgsProcessingOutputVectorLayer(name, tr(title), QgsProcessing.SourceType.TypeVectorPolygon)
            )
        self.addOutput(QgsProcessingOutputMultipleLayers("MOSAICS", tr("Mosaics")))
        self.addOutput(QgsProcessingOutputFile("SUMMARY", tr("Summary (JSON)")))

    def job_spec(self, parameters, context) -> JobSpec:
        layers = [
            self.check_file_layer(layer) for layer in self.parameterAsLayerList(parameters, "INPUTS", context)
        ]
        folder = self.parameterAsFile(parameters, "FOLDER", context)
        files = folder_rasters(folder)
        if folder and not files:
            raise QgsProcessingException(tr("Folder: {folder} holds no raster files").format(folder=folder))
        if not layers and not files:
            raise QgsProcessingException(tr("Scenes: choose raster layers or a folder of rasters"))
        queries = split_lines(self.parameterAsString(parameters, "QUERIES", context))
        labels = split_labels(self.parameterAsString(parameters, "LABELS", context))
        preset = self.parameterAsEnumString(parameters, "PRESET", context)
        if not (queries or labels or preset):
            raise QgsProcessingException(tr("Give queries to localize, or labels or a preset, or both"))
        if labels and not preset and len(labels) < 2:
            raise QgsProcessingException(tr("Labels: give at least two labels or choose a preset"))
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        return JobSpec(
            mode="annotate",
            scenes=(*(layer.source() for layer in layers), *files),
            output=output,
            queries=queries,
            labels=() if preset else labels,
            preset=preset,
            method=self.method(parameters, context),
            overwrite=self.may_replace(output),
            model=self.model_choice(parameters, context),
            chips=self.chip_choice(parameters, context, layers[0] if layers else None),
        )

    def processAlgorithm(self, parameters, context, feedback):
        spec = self.job_spec(parameters, context)
        (summary,) = self.run_geo_dfm(spec, feedback)
        outputs = summary.get("outputs", {})
        gpkg = outputs.get("geopackage")
        self.load_results(context, tr("geo-dfm annotate: {t}").format(t=spec.calls()[0].title), summary)
        return {
            "OUTPUT": spec.output,
            "GEOPACKAGE": gpkg,
            "HOTSPOTS": f"{gpkg}|layername=hotspots" if gpkg and spec.queries else None,
            "REGIONS": f"{gpkg}|layername=regions" if gpkg and (spec.labels or spec.preset) else None,
            "SCENES": f"{gpkg}|layername=scenes" if gpkg else None,
            "MOSAICS": list((outputs.get("mosaics") or {}).values()),
            "SUMMARY": outputs.get("summary"),
        }


class FinetuneAlgorithm(GeoDfmAlgorithm):
    job = "finetune"
    group_key = "training"

    def displayName(self) -> str:
        return tr("Fine-tune from labelled polygons")

    def shortHelpString(self) -> str:
        return tr(
            "Adapts the model to your classes: chips of the scene are captioned with the label of the "
            "polygon under them (geo-dfm pairs), then the model is fine-tuned on them (geo-dfm finetune). "
            "The adapter folder it writes is used with ADAPTER (and the panel's model choice); the "
            "training chips load coloured by label."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add(
            QgsProcessingParameterRasterLayer("INPUT", tr("Scene")),
            tr("The raster the polygons label (a file)."),
        )
        self.add(
            QgsProcessingParameterVectorLayer(
                "LABELS", tr("Labelled polygons"), [QgsProcessing.SourceType.TypeVectorPolygon]
            ),
            tr("Polygons whose attribute names the class under them (any CRS)."),
        )
        self.add(
            QgsProcessingParameterField(
                "LABEL_FIELD",
                tr("Label field"),
                parentLayerParameterName="LABELS",
                type=QgsProcessingParameterField.DataType.String,
            ),
            tr("The attribute holding each polygon's class name."),
        )
        self.add_method("finetune", tr("What trains: lora, ia3, loha, oft, full, frozen-text, frozen-image."))
        self.add(
            QgsProcessingParameterNumber(
                "STEPS", tr("Training steps"), QgsProcessingParameterNumber.Type.Integer, 100, minValue=1
            ),
            tr("Optimizer steps of the fine-tune."),
        )
        self.add_model_parameters()
        self.add_chip_parameters()
        self.add(
            QgsProcessingParameterFolderDestination("OUTPUT", tr("Output folder")),
            tr("Receives pairs/ (the training chips and captions) and adapter/ (the fine-tuned adapter)."),
        )
        self.addOutput(QgsProcessingOutputFolder("ADAPTER", tr("Adapter folder")))
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                "PAIRS", tr("Training chips"), QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputFile("MODEL_CARD", tr("Model card (JSON)")))

    def job_spec(self, parameters, context) -> JobSpec:
        layer = self.scene(parameters, "INPUT", context)
        labels = self.parameterAsVectorLayer(parameters, "LABELS", context)
        if labels is None or not labels.isValid():
            raise QgsProcessingException(self.invalidSourceError(parameters, "LABELS"))
        fields = self.parameterAsFields(parameters, "LABEL_FIELD", context)
        if not fields:
            raise QgsProcessingException(tr("Label field: choose the field that holds the class names"))
        model = self.model_choice(parameters, context)
        if model.adapter:
            raise QgsProcessingException(tr("Adapter: fine-tuning starts from a base model, not an adapter"))
        chip_size = self.parameterAsString(parameters, "CHIP_SIZE", context).strip()
        info = self.capabilities.model(model.name or settings.default_model())
        if not chip_size and info is not None and info.input_size:
            chip_size = str(info.input_size)  # the pairs job's own default is 224 px
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        return JobSpec(
            mode="finetune",
            scenes=(layer.source(),),
            output=output,
            method=self.method(parameters, context),
            label_layer=vector_file(labels),
            label_field=fields[0],
            steps=self.parameterAsInt(parameters, "STEPS", context),
            overwrite=self.may_replace_run(output),
            model=model,
            chips=self.chip_choice(parameters, context, layer, chip_size=chip_size),
        )

    @staticmethod
    def may_replace_run(path: str) -> bool:
        """An earlier fine-tune here (only its pairs/ and adapter/, written by geo-dfm) may be replaced."""
        entries = os.listdir(path) if os.path.isdir(path) else []
        ours = {"pairs", "adapter"}
        if not entries:
            return False
        if set(entries) <= ours and all(
            os.path.exists(os.path.join(path, entry, "summary.json")) for entry in entries
        ):
            return True
        raise QgsProcessingException(
            tr("{path}: the output folder is not empty; choose a new or empty folder").format(path=path)
        )

    def processAlgorithm(self, parameters, context, feedback):
        spec = self.job_spec(parameters, context)
        pairs, trained = self.run_geo_dfm(spec, feedback)
        outputs = trained.get("outputs", {})
        index = pairs.get("outputs", {}).get("index")
        self.load_results(context, tr("geo-dfm fine-tune: training chips"), pairs, job="pairs")
        return {
            "OUTPUT": spec.output,
            "ADAPTER": outputs.get("adapter") or spec.adapter_folder,
            "PAIRS": f"{index}|layername=pairs" if index else None,
            "MODEL_CARD": outputs.get("model_card"),
        }
