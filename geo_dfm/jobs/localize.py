"""``localize``: one heatmap per text query over a scene (semantic localization).

Every method shares one pass over the scene (every chip encoded once, then one dot product per
query, per batch):

- ``blend`` (default): chips of the model's input size (or ``chip_size``/``scales`` in pixels or
  metres) with overlap; each chip's cosine similarity is splatted with a Hann (or Gaussian, uniform)
  window into the disk-backed accumulator, optionally on a decimated output grid; band 1 is the
  scene-wide min–max normalised mean similarity.
- ``selo``: the reference SeLo v1 map (docs/selo.md): windows of 256/512/768 px, each crop resized to
  256×256 bicubic, the caption verbatim, uniform mean (exact, on the compressed grid of window edges),
  min–max, ``uint8`` truncation, 251 median with replicated border; band 1 is ``g / 255``. ``exact``
  adds the reference's JPEG (q95) round trips of every crop and of ``g``.

- ``dense``: patch-level maps (docs/dense.md): each window (chips as for ``blend``) is resized to
  ``input_size`` px (default: the model's input size; larger ones interpolate the positional
  embedding), the ``variant``'s last ViT block gives one text-aligned feature per patch, and each
  window's (Q, h, w) patch scores are splatted (upsampled bilinearly onto the window's pixels) into the
  same accumulator as ``blend``.

Scores (``score``): ``minmax`` puts the scene-wide min–max normalised mean similarity in band 1 (what
``blend`` and ``selo`` have always done); ``contrast`` (the default of ``dense``, an option for
``blend``) puts the mean probability of the query against a background vocabulary (``background``,
default :data:`geo_dfm.models.contrast.DEFAULT_BACKGROUND`; softmax at the model's logit scale) in band
1, so a query absent from the scene gives a low map instead of a stretched one. ``cls_lambda``
(dense only) subtracts that share of the window's image-level score first (SegEarth-OV: 0.3).

Band 2 of every COG is the raw mean cosine similarity; pixels outside valid data are nodata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from geo_dfm.jobs.dense import check_dense_options, iter_patch_features, patch_footprint
from geo_dfm.jobs.outputs import write_heatmap_outputs
from geo_dfm.jobs.params import ChipParams, ModelParams, param
from geo_dfm.jobs.pipeline import check_queries, check_scene, iter_features, plan_stride, start_job
from geo_dfm.jobs.scoring import cosine_scores
from geo_dfm.jobs.selo import selo_preparer
from geo_dfm.jobs.stitch import (
    WEIGHTINGS,
    BlendStitcher,
    SeloStitcher,
    chip_map_decimation,
    dense_map_decimation,
)
from geo_dfm.jobs.summary import grid_summary
from geo_dfm.models.patch_head import DEFAULT_VARIANT, DENSE_VARIANTS, PatchHead
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

METHODS = ("blend", "selo", "dense")
#: How band 1 is made (``auto``: ``contrast`` for ``dense``, ``minmax`` for the others).
SCORES = ("auto", "minmax", "contrast")
#: Above this many output pixels, ``blend`` decimates automatically (``decimate`` overrides).
AUTO_DECIMATE_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class LocalizeParams:
    """Everything ``localize`` needs (see the module docstring for the methods)."""

    scene: str = param(help="The scene: any GDAL raster (GeoTIFF, COG, VRT, …) or a slippy-map folder.")
    queries: tuple[str, ...] = param(help="Text queries, one heatmap each.")
    output: str = param(help="Output folder.")
    overwrite: bool = param(False, help="Replace an existing output folder written by geo-dfm.")
    method: str = param(
        "blend",
        help="blend: weighted chip splats; selo: the reference SeLo map; dense: patch-level maps.",
        choices=METHODS,
    )
    score: str = param(
        "auto",
        help="Band 1: minmax (scene-wide stretch of the similarity) or contrast (probability against "
        "the background vocabulary); auto: contrast for dense, minmax otherwise.",
        choices=SCORES,
    )
    background: tuple[str, ...] = param(
        (), help="contrast only: the background vocabulary (default: generic remote-sensing classes)."
    )
    variant: str = param(
        DEFAULT_VARIANT,
        help="dense only: how the last ViT block makes patch features.",
        choices=DENSE_VARIANTS,
    )
    input_size: int | None = param(
        None,
        help="dense only: pixels a side each window is resized to for the model (default: the model's "
        "input size; e.g. 448 for a B/16 interpolates its positional embedding).",
    )
    cls_lambda: float = param(
        0.0, help="dense only: subtract this share of the window's image-level score (SegEarth-OV: 0.3)."
    )
    exact: bool = param(False, help="selo only: the reference's JPEG (q95) round trips.")
    weighting: str = param(
        "hann", help="blend/dense: how a window's scores spread over its pixels.", choices=WEIGHTINGS
    )
    decimate: int | None = param(None, help="blend/dense: one output pixel per N×N scene pixels.")
    region_threshold: float = param(0.5, help="Normalised score above which pixels form hot regions.")
    min_region_area: float = param(0.0, help="Drop hot regions smaller than this (m²).")
    chips: ChipParams = field(default_factory=ChipParams)
    model: ModelParams = field(default_factory=ModelParams)

    def inputs(self) -> tuple[str, ...]:
        """Every file the job reads (an output must never replace one of them)."""
        return (self.scene, *self.chips.input_files(), *self.model.input_files())


def check_params(params: LocalizeParams) -> LocalizeParams:
    """Checks that need neither the scene nor the model; returns the params with clean queries."""
    queries = check_queries(params.queries)
    if params.method not in METHODS:
        raise InputError("method", f"unknown method {params.method!r}; choose {' or '.join(METHODS)}")
    if params.weighting not in WEIGHTINGS:
        raise InputError(
            "weighting", f"unknown weighting {params.weighting!r}; choose {', '.join(WEIGHTINGS)}"
        )
    if params.exact and params.method != "selo":
        raise InputError("exact", "only applies to --method selo")
    if params.method == "selo" and params.decimate not in (None, 1):
        raise InputError("decimate", "selo maps are computed at full resolution")
    if params.method == "selo" and params.chips.xyz_zoom is not None:
        raise InputError("xyz_zoom", "selo uses its own windows; XYZ tiles need --method blend")
    if params.score not in SCORES:
        raise InputError("score", f"unknown score {params.score!r}; choose {', '.join(SCORES)}")
    contrast = score_kind(params) == "contrast"
    if params.method == "selo" and contrast:
        raise InputError("score", "selo keeps the reference's min–max chain; contrast needs blend or dense")
    if params.background and not contrast:
        raise InputError("background", "only applies with --score contrast")
    check_dense_options(params)
    if params.cls_lambda > 0 and not contrast:
        raise InputError("cls_lambda", "only applies with --score contrast")
    if not 0.0 <= params.region_threshold <= 1.0:
        raise InputError("region_threshold", f"must be between 0 and 1, got {params.region_threshold}")
    if params.min_region_area < 0:
        raise InputError("min_region_area", f"must be at least 0, got {params.min_region_area}")
    return replace(params, queries=queries, scene=check_scene(params.scene))


def score_kind(params: LocalizeParams) -> str:
    """``minmax`` or ``contrast``: what band 1 of the maps holds."""
    if params.score != "auto":
        return params.score
    return "contrast" if params.method == "dense" else "minmax"


def run_localize(params: LocalizeParams, progress: Progress) -> dict[str, Any]:
    """Run ``localize`` and return its summary (also written to ``OUT/summary.json``)."""
    from geo_dfm.models.contrast import DEFAULT_BACKGROUND, TextContrast

    params = check_params(params)
    selo, dense = params.method == "selo", params.method == "dense"
    contrast = score_kind(params) == "contrast"
    layout = "selo" if selo else "regular"
    queries = len(params.queries)
    with (
        start_job("localize", params.output, params.overwrite, progress, params.inputs()) as job,
        job.plan(params.scene, params.chips, params.model, layout=layout) as plan,
    ):
        encoder = job.load_encoder(params.model)
        with job.stage("encode texts"):
            texts = encoder.encode_texts(list(params.queries))
            vocabulary = (
                TextContrast.build(
                    encoder,
                    params.queries,
                    params.background or DEFAULT_BACKGROUND,
                    cls_lambda=params.cls_lambda,
                )
                if contrast
                else None
            )
        grid = plan.reader.grid
        head = PatchHead(params.variant, params.input_size)
        if selo:
            stitcher: Any = SeloStitcher(grid, queries, exact=params.exact)
        else:
            if dense:
                footprint = patch_footprint(plan, encoder, head)
                decimation = dense_map_decimation(grid, footprint, params.decimate, AUTO_DECIMATE_MAX_PIXELS)
            else:
                decimation = chip_map_decimation(
                    grid, plan_stride(plan), params.decimate, AUTO_DECIMATE_MAX_PIXELS
                )
            stitcher = BlendStitcher(grid, queries, params.weighting, decimation, prescored=contrast)
        prepare = selo_preparer(params.exact) if selo else None
        with stitcher:
            if dense:
                batches: Any = iter_patch_features(
                    plan, encoder, head, progress, params.model.batch_size, timer=job.timer
                )
            else:
                batches = iter_features(
                    plan, encoder, progress, params.model.batch_size, prepare, timer=job.timer
                )
            for batch in batches:
                with job.timer.stage("stitch"):
                    stitcher.add(batch.windows, window_values(batch, texts, vocabulary, dense))
            with job.stage("write outputs"):
                outputs = write_heatmap_outputs(job, stitcher, plan.reader, params)
        return job.finish(
            model=encoder.describe(),
            parameters=parameters_of(params, stitcher.decimation),
            crs=stitcher.output_grid.crs,
            outputs=outputs,
            queries=list(params.queries),
            scene=params.scene,
            grid=grid_summary(stitcher.output_grid),
            chips=len(plan.windows),
        )


def window_values(batch: Any, texts: Any, vocabulary: Any, dense: bool) -> Any:
    """What the stitcher splats for each window of ``batch``: (n, Q) cosines or (n, 2Q) contrast
    scores per chip; (n, Q, h, w) cosines or (n, 2Q, h, w) contrast scores per patch (dense)."""
    if vocabulary is not None:
        scores = vocabulary.score_patches(batch.features) if dense else vocabulary.score(batch.features)
        return scores.all_channels()
    if dense:
        return cosine_scores(batch.features.patches.transpose(0, 2, 3, 1), texts).transpose(0, 3, 1, 2)
    return cosine_scores(batch.features, texts)


def parameters_of(params: LocalizeParams, decimation: int) -> dict[str, Any]:
    """The ``parameters`` entry of the summary."""
    from geo_dfm.models.contrast import DEFAULT_BACKGROUND

    contrast = score_kind(params) == "contrast"
    dense = params.method == "dense"
    return {
        "method": params.method,
        "score": score_kind(params),
        "background": list(params.background or DEFAULT_BACKGROUND) if contrast else None,
        "variant": params.variant if dense else None,
        "input_size": params.input_size if dense else None,
        "cls_lambda": params.cls_lambda if dense else None,
        "exact": params.exact,
        "weighting": params.weighting if params.method != "selo" else "uniform",
        "decimate": decimation,
        "region_threshold": params.region_threshold,
        "min_region_area": params.min_region_area,
        "chips": params.chips.as_dict(),
        "model": params.model.as_dict(),
    }
