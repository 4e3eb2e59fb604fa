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

``method="dense"`` (open-vocabulary segmentation, docs/dense.md): each window's patch features (the
``variant``'s last ViT block, windows resized to ``input_size``) give per-patch class probabilities —
the softmax of the model's logit scale × cosine over the labels, optionally after subtracting
``cls_lambda`` × the window's image-level score — that are splatted (bilinearly upsampled onto the
window) into the same accumulator; pixels take the argmax as above. The ``chips`` layer labels each
window from its ordinary image embedding (as ``blend`` does); the ``regions`` layer dissolves the
per-pixel class raster itself (regions below ``min_region_area`` m² are left out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from rasterio.windows import Window

from geo_dfm.jobs.dense import check_dense_options, iter_patch_features, patch_footprint
from geo_dfm.jobs.labels import MAX_LABELS, resolve_labels
from geo_dfm.jobs.outputs import write_class_outputs
from geo_dfm.jobs.params import ChipParams, ModelParams, param
from geo_dfm.jobs.pipeline import check_scene, iter_features, plan_stride, start_job
from geo_dfm.jobs.scoring import zero_shot_probabilities
from geo_dfm.jobs.stitch import WEIGHTINGS, BlendStitcher, chip_map_decimation, dense_map_decimation
from geo_dfm.jobs.summary import grid_summary
from geo_dfm.models.patch_head import DEFAULT_VARIANT, DENSE_VARIANTS, PatchHead
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

UNLABELLED = 255
TOP_K = 3
METHODS = ("blend", "dense")
#: Above this many output pixels × classes, the class map is decimated automatically.
AUTO_DECIMATE_MAX_VALUES = 256_000_000


@dataclass(frozen=True)
class ClassifyParams:
    """Everything ``classify`` needs: the class labels come from exactly one of ``labels``,
    ``labels_file`` or ``preset``."""

    scene: str = param(help="The scene: any GDAL raster or a slippy-map folder.")
    output: str = param(help="Output folder.")
    labels: tuple[str, ...] = param((), help="Class names.")
    labels_file: str | None = param(None, help="A text file with one class name per line.")
    preset: str | None = param(None, help="A label preset (landcover, aid, resisc45, eurosat).")
    overwrite: bool = param(False, help="Replace an existing output folder written by geo-dfm.")
    templates: str = param("rs105", help="Prompt templates: rs105, remoteclip, skyclip, none, or a file.")
    min_confidence: float = param(0.0, help="Leave chips and pixels below this top probability unlabelled.")
    weighting: str = param("hann", help="How overlapping chips' probabilities blend.", choices=WEIGHTINGS)
    decimate: int | None = param(None, help="One output pixel per N×N scene pixels.")
    method: str = param(
        "blend", help="blend: chip probabilities; dense: patch-level segmentation.", choices=METHODS
    )
    variant: str = param(
        DEFAULT_VARIANT,
        help="dense only: how the last ViT block makes patch features.",
        choices=DENSE_VARIANTS,
    )
    input_size: int | None = param(
        None, help="dense only: pixels a side each window is resized to (default: the model's input size)."
    )
    cls_lambda: float = param(
        0.0, help="dense only: subtract this share of the window's image-level score (SegEarth-OV: 0.3)."
    )
    min_region_area: float = param(0.0, help="dense only: leave class regions below this out (m²).")
    chips: ChipParams = field(default_factory=ChipParams)
    model: ModelParams = field(default_factory=ModelParams)

    def inputs(self) -> tuple[str, ...]:
        """Every file the job reads (an output must never replace one of them)."""
        files = (self.labels_file,) if self.labels_file else ()
        return (self.scene, *files, *self.chips.input_files(), *self.model.input_files())


@dataclass(frozen=True)
class ChipLabels:
    """Per-chip results, O(chips): ``windows`` (N, 4) int64 ``col_off, row_off, width, height``,
    ``probabilities`` (N, C) float32, ``best`` (N,) class index or -1 (unlabelled), ``confidence`` (N,)."""

    windows: np.ndarray
    probabilities: np.ndarray
    best: np.ndarray
    confidence: np.ndarray

    @classmethod
    def of(cls, windows: list[Window], probabilities: np.ndarray, min_confidence: float) -> ChipLabels:
        best = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, np.intp)
        confidence = probabilities[np.arange(len(best)), best]
        keys = np.array([(w.col_off, w.row_off, w.width, w.height) for w in windows], dtype=np.int64).reshape(
            -1, 4
        )
        return cls(keys, probabilities, np.where(confidence >= min_confidence, best, -1), confidence)

    def window_list(self) -> list[Window]:
        return [Window(*map(int, row)) for row in self.windows]


def check_params(params: ClassifyParams) -> ClassifyParams:
    """Checks that need neither the scene nor the model; returns the params with resolved labels."""
    from geo_dfm.models.prompts import get_templates

    labels = resolve_labels(params.labels or None, params.labels_file, params.preset)
    if len(labels) > MAX_LABELS:
        raise InputError("labels", f"{len(labels)} labels given; a class raster holds at most {MAX_LABELS}")
    get_templates(params.templates)  # a missing template file fails here, not after the model loads
    if params.weighting not in WEIGHTINGS:
        raise InputError(
            "weighting", f"unknown weighting {params.weighting!r}; choose {', '.join(WEIGHTINGS)}"
        )
    if not 0.0 <= params.min_confidence <= 1.0:
        raise InputError("min_confidence", f"must be between 0 and 1, got {params.min_confidence}")
    if params.method not in METHODS:
        raise InputError("method", f"unknown method {params.method!r}; choose {' or '.join(METHODS)}")
    check_dense_options(params, ("min_region_area", 0.0))
    if params.min_region_area < 0:
        raise InputError("min_region_area", f"must be at least 0, got {params.min_region_area}")
    return replace(params, labels=labels, scene=check_scene(params.scene))


def run_classify(params: ClassifyParams, progress: Progress) -> dict[str, Any]:
    """Run ``classify`` and return its summary (also written to ``OUT/summary.json``)."""
    from geo_dfm.models.contrast import TextContrast

    params = check_params(params)
    labels = params.labels
    dense = params.method == "dense"
    with (
        start_job("classify", params.output, params.overwrite, progress, params.inputs()) as job,
        job.plan(params.scene, params.chips, params.model) as plan,
    ):
        encoder = job.load_encoder(params.model)
        with job.stage("encode labels"):
            class_matrix = encoder.class_embeddings(list(labels), params.templates)
        pixel_classes = (
            TextContrast(
                names=labels,
                texts=class_matrix,
                background_names=(),
                background=np.zeros((0, class_matrix.shape[1]), np.float32),
                temperature=encoder.logit_scale,
                joint=True,
                cls_lambda=params.cls_lambda,
            )
            if dense
            else None
        )
        grid = plan.reader.grid
        head = PatchHead(params.variant, params.input_size)
        if dense:
            decimation = dense_map_decimation(
                grid,
                patch_footprint(plan, encoder, head),
                params.decimate,
                AUTO_DECIMATE_MAX_VALUES,
                len(labels),
            )
        else:
            decimation = chip_map_decimation(
                grid, plan_stride(plan), params.decimate, AUTO_DECIMATE_MAX_VALUES, channels=len(labels)
            )
        windows: list[Window] = []
        parts: list[np.ndarray] = []
        with BlendStitcher(grid, len(labels), params.weighting, decimation, normalize=False) as stitcher:
            if dense:
                batches: Any = iter_patch_features(
                    plan, encoder, head, progress, params.model.batch_size, timer=job.timer
                )
            else:
                batches = iter_features(plan, encoder, progress, params.model.batch_size, timer=job.timer)
            for batch in batches:
                with job.timer.stage("stitch"):
                    if pixel_classes is not None:
                        probabilities = zero_shot_probabilities(batch.features.image, class_matrix)
                        stitcher.add(batch.windows, pixel_classes.score_patches(batch.features).probability)
                    else:
                        probabilities = zero_shot_probabilities(batch.features, class_matrix)
                        stitcher.add(batch.windows, probabilities)
                windows.extend(batch.windows)
                parts.append(probabilities)
            chips = ChipLabels.of(windows, np.concatenate(parts), params.min_confidence)
            with job.stage("write outputs"):
                outputs, areas = write_class_outputs(
                    job, stitcher, plan.reader, params, chips, pixel_regions=dense
                )
        return job.finish(
            model=encoder.describe(),
            parameters={
                "templates": params.templates,
                "template_count": template_count(params.templates),
                "min_confidence": params.min_confidence,
                "weighting": params.weighting,
                "decimate": decimation,
                "method": params.method,
                "variant": params.variant if dense else None,
                "input_size": params.input_size if dense else None,
                "cls_lambda": params.cls_lambda if dense else None,
                "min_region_area": params.min_region_area if dense else None,
                "pixel_logit_scale": encoder.logit_scale if dense else None,
                "chips": params.chips.as_dict(),
                "model": params.model.as_dict(),
            },
            crs=grid.crs,
            outputs=outputs,
            scene=params.scene,
            labels=list(labels),
            area_per_class=areas,
            chips_per_class={label: int((chips.best == i).sum()) for i, label in enumerate(labels)},
            unlabelled_chips=int((chips.best < 0).sum()),
            chips=len(plan.windows),
            grid=grid_summary(stitcher.output_grid),
        )


def template_count(templates: str) -> int:
    from geo_dfm.models.prompts import get_templates

    return len(get_templates(templates))
