"""``classify``: a zero-shot land-cover label for every chip of a scene, and a class map.

Per chip: the probabilities are the softmax of ``100 · cos`` between the chip embedding and each
class embedding (the prompt-ensemble mean of the label's templates). Chip label = the most
probable class, confidence = its probability, plus the top 3.

Pixels: overlapping chips are resolved by blending their *probability vectors* with the same
weighted accumulator as ``localize`` (Hann splats by default), and a pixel's class is the
argmax of its blended probabilities; a pixel whose blended top probability is below
``min_confidence`` is unlabelled (255), as is every pixel outside valid data. ``probabilities.tif``
holds the blended probabilities (one band per label). Chips below ``min_confidence`` have no
label in the chips layer and are left out of the dissolved regions. ``area_per_class`` counts the
class raster's pixels (true m², geodesic on degree CRSs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from geo_dfm.jobs.common import (
    auto_decimation,
    check_output_free,
    check_scene,
    encode_windows,
    load_job_encoder,
    model_input_size,
    model_summary,
    open_chip_plan,
    valid_mask_on,
)
from geo_dfm.jobs.labels import check_labels
from geo_dfm.jobs.params import ChipParams, ModelParams
from geo_dfm.jobs.summary import StageTimer, grid_summary, make_summary, write_summary
from geo_dfm.progress import Progress
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

log = logging.getLogger(__name__)

UNLABELLED = 255
LOGIT_SCALE = 100.0
TOP_K = 3
#: Above this many output pixels × classes, the class map is decimated automatically.
AUTO_DECIMATE_MAX_VALUES = 256_000_000


@dataclass(frozen=True)
class ClassifyParams:
    """Everything ``classify`` needs."""

    scene: str
    output: str
    labels: tuple[str, ...]
    overwrite: bool = False
    templates: str = "rs105"
    min_confidence: float = 0.0
    weighting: str = "hann"
    decimate: int | None = None
    chips: ChipParams = field(default_factory=ChipParams)
    model: ModelParams = field(default_factory=ModelParams)


@dataclass(frozen=True)
class ChipLabels:
    """Per-chip results: ``probabilities`` (N, C), ``best`` (N,) class index or -1 (unlabelled),
    ``confidence`` (N,)."""

    windows: list
    probabilities: np.ndarray
    best: np.ndarray
    confidence: np.ndarray


@dataclass(frozen=True)
class ClassMap:
    """Blended per-pixel results on ``grid``: ``probabilities`` (C, H, W) NaN outside ``valid``,
    ``classes`` (H, W) uint8 (255 = unlabelled or nodata)."""

    grid: PixelGrid
    probabilities: np.ndarray
    classes: np.ndarray
    valid: np.ndarray
    decimation: int


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def label_chips(
    windows: list, embeddings: np.ndarray, classes: np.ndarray, min_confidence: float
) -> ChipLabels:
    """Zero-shot probabilities of each chip and its label (or -1 below ``min_confidence``)."""
    probabilities = softmax(LOGIT_SCALE * embeddings.astype(np.float64) @ classes.T.astype(np.float64))
    best = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(best)), best]
    best = np.where(confidence >= min_confidence, best, -1)
    return ChipLabels(windows, probabilities, best, confidence)


def blend_classes(
    plan: Any, chips: ChipLabels, weighting: str, decimation: int, min_confidence: float
) -> ClassMap:
    """Blend chip probabilities into pixels; argmax per pixel (see the module docstring)."""
    from tile_tools.accumulate import WeightedAccumulator

    grid = plan.reader.grid
    channels = chips.probabilities.shape[1]
    with WeightedAccumulator(grid, channels, weight=weighting, decimation=decimation) as acc:
        for window, values in zip(chips.windows, chips.probabilities, strict=True):
            acc.add(window, values)
        probabilities = acc.mean()
        valid = acc.valid_mask() & valid_mask_on(plan.reader, acc.output_grid)
        out_grid = acc.output_grid
    probabilities[:, ~valid] = np.nan
    filled = np.where(valid[None], probabilities, -1.0)
    classes = filled.argmax(axis=0).astype(np.uint8)
    top = filled.max(axis=0)
    classes[~valid | (top < min_confidence)] = UNLABELLED
    return ClassMap(out_grid, probabilities, classes, valid, decimation)


def class_areas_m2(classes: np.ndarray, grid: PixelGrid, labels: tuple[str, ...]) -> dict[str, float | None]:
    """Area of each class in the class raster (m²; None without a CRS)."""
    from shapely.geometry import box

    from tile_tools.vectorize import areas_m2

    if grid.crs is None:
        return dict.fromkeys(labels)
    t = grid.transform
    pixel_rows = [box(*_pixel_bounds(t, row)) for row in range(grid.height)]
    row_area = areas_m2(pixel_rows, grid.crs)  # one pixel per row (varies with latitude on degrees)
    areas = {}
    for index, label in enumerate(labels):
        per_row = (classes == index).sum(axis=1)
        areas[label] = float((per_row * row_area).sum())
    return areas


def _pixel_bounds(t: Any, row: int) -> tuple[float, float, float, float]:
    xs = [t.c + t.a * c + t.b * r for c in (0, 1) for r in (row, row + 1)]
    ys = [t.f + t.d * c + t.e * r for c in (0, 1) for r in (row, row + 1)]
    return min(xs), min(ys), max(xs), max(ys)


def write_outputs(
    folder: Path, target: Path, params: ClassifyParams, grid: PixelGrid, chips: ChipLabels, cmap: ClassMap
) -> dict[str, Any]:
    """Write the class and probability COGs and the GeoPackage into ``folder``; paths under ``target``."""
    from tile_tools.raster_writers import write_class_raster, write_cog
    from tile_tools.vector_io import write_geopackage
    from tile_tools.vectorize import chip_labels_to_polygons, dissolve_labels

    labels = params.labels
    write_class_raster(folder / "classes.tif", cmap.classes, cmap.grid, labels)
    write_cog(
        folder / "probabilities.tif",
        cmap.probabilities,
        cmap.grid,
        band_descriptions=list(labels),
        valid=cmap.valid,
    )
    outputs: dict[str, Any] = {
        "classes": str(target / "classes.tif"),
        "probabilities": str(target / "probabilities.tif"),
        "vectors": None,
    }
    if grid.crs is not None:
        order = np.argsort(-chips.probabilities, axis=1)[:, :TOP_K]
        topk = [[(labels[j], float(chips.probabilities[i, j])) for j in row] for i, row in enumerate(order)]
        chip_frame = chip_labels_to_polygons(
            chips.windows,
            [labels[b] if b >= 0 else None for b in chips.best],
            chips.confidence,
            grid,
            topk=topk,
        )
        regions = dissolve_labels(chip_frame[chip_frame["label"].notna()])
        write_geopackage({"chips": chip_frame, "regions": regions}, folder / "labels.gpkg")
        outputs["vectors"] = str(target / "labels.gpkg")
    else:
        log.warning("%s: the scene has no CRS; no GeoPackage is written", params.scene)
    outputs["summary"] = str(target / "summary.json")
    return outputs


def run_classify(params: ClassifyParams, progress: Progress) -> dict[str, Any]:
    """Run ``classify`` and return its summary (also written to ``OUT/summary.json``)."""
    from geo_dfm.models.prompts import get_templates
    from tile_tools.atomic import atomic_directory

    timer = StageTimer()
    labels = check_labels(params.labels, "--labels")
    templates = get_templates(params.templates)
    if params.weighting not in ("hann", "gaussian", "uniform"):
        raise InputError("--weighting", f"unknown weighting {params.weighting!r}")
    target = check_output_free(params.output, params.overwrite)
    scene = check_scene(params.scene)
    params = replace(params, scene=str(scene), labels=labels)
    with timer.stage("load model"):
        progress.stage("load model")
        encoder = load_job_encoder(params.model)
    with timer.stage("encode texts"):
        progress.stage("encode labels")
        class_matrix = np.asarray(encoder.class_embeddings(list(labels), templates), dtype=np.float32)
    with timer.stage("plan chips"):
        progress.stage("plan chips")
        plan = open_chip_plan(scene, params.chips, model_input_size(encoder))
    with plan:
        with timer.stage("encode images"):
            embeddings = encode_windows(plan.reader, plan.windows, encoder, params.model.batch_size, progress)
        chips = label_chips(plan.windows, embeddings, class_matrix, params.min_confidence)
        with timer.stage("stitch"):
            progress.stage("stitch")
            decimation = auto_decimation(
                plan.reader.grid, params.decimate, AUTO_DECIMATE_MAX_VALUES, channels=len(labels)
            )
            cmap = blend_classes(plan, chips, params.weighting, decimation, params.min_confidence)
        grid = plan.reader.grid
    progress.stage("write outputs")
    with atomic_directory(target, overwrite=params.overwrite) as folder:
        with timer.stage("write outputs"):
            outputs = write_outputs(folder, target, params, grid, chips, cmap)
        chip_counts = {label: int((chips.best == i).sum()) for i, label in enumerate(labels)}
        summary = make_summary(
            "classify",
            model_summary(encoder),
            {
                "templates": params.templates,
                "template_count": len(templates),
                "min_confidence": params.min_confidence,
                "weighting": params.weighting,
                "decimate": decimation,
                "chips": params.chips.as_dict(),
                "model": params.model.as_dict(),
            },
            timer,
            grid.crs,
            outputs,
            scene=str(scene),
            labels=list(labels),
            area_per_class=class_areas_m2(cmap.classes, cmap.grid, labels),
            chips_per_class=chip_counts,
            unlabelled_chips=int((chips.best < 0).sum()),
            chips=len(plan.windows),
            grid=grid_summary(cmap.grid),
        )
        write_summary(summary, folder / "summary.json")
    return summary
