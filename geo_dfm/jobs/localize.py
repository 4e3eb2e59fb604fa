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

Band 2 of every COG is the raw mean cosine similarity; pixels outside valid data are nodata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from geo_dfm.jobs.outputs import write_heatmap_outputs
from geo_dfm.jobs.params import ChipParams, ModelParams, param
from geo_dfm.jobs.pipeline import check_queries, check_scene, iter_features, start_job
from geo_dfm.jobs.scoring import cosine_scores
from geo_dfm.jobs.selo import selo_preparer
from geo_dfm.jobs.stitch import WEIGHTINGS, BlendStitcher, SeloStitcher, auto_decimation
from geo_dfm.jobs.summary import grid_summary
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

METHODS = ("blend", "selo")
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
        "blend", help="blend: weighted chip splats; selo: the reference SeLo map.", choices=METHODS
    )
    exact: bool = param(False, help="selo only: the reference's JPEG (q95) round trips.")
    weighting: str = param(
        "hann", help="blend only: how a chip's score spreads over its pixels.", choices=WEIGHTINGS
    )
    decimate: int | None = param(None, help="blend only: one output pixel per N×N scene pixels.")
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
    if not 0.0 <= params.region_threshold <= 1.0:
        raise InputError("region_threshold", f"must be between 0 and 1, got {params.region_threshold}")
    if params.min_region_area < 0:
        raise InputError("min_region_area", f"must be at least 0, got {params.min_region_area}")
    return replace(params, queries=queries, scene=check_scene(params.scene))


def run_localize(params: LocalizeParams, progress: Progress) -> dict[str, Any]:
    """Run ``localize`` and return its summary (also written to ``OUT/summary.json``)."""
    params = check_params(params)
    selo = params.method == "selo"
    layout = "selo" if selo else "regular"
    with (
        start_job("localize", params.output, params.overwrite, progress, params.inputs()) as job,
        job.plan(params.scene, params.chips, params.model, layout=layout) as plan,
    ):
        encoder = job.load_encoder(params.model)
        with job.stage("encode texts"):
            texts = encoder.encode_texts(list(params.queries))
        grid = plan.reader.grid
        if selo:
            stitcher: Any = SeloStitcher(grid, len(params.queries), exact=params.exact)
        else:
            decimation = auto_decimation(grid, params.decimate, AUTO_DECIMATE_MAX_PIXELS)
            stitcher = BlendStitcher(grid, len(params.queries), params.weighting, decimation)
        prepare = selo_preparer(params.exact) if selo else None
        with stitcher:
            batches = iter_features(
                plan, encoder, progress, params.model.batch_size, prepare, timer=job.timer
            )
            for batch in batches:
                with job.timer.stage("stitch"):
                    stitcher.add(batch.windows, cosine_scores(batch.features, texts))
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


def parameters_of(params: LocalizeParams, decimation: int) -> dict[str, Any]:
    """The ``parameters`` entry of the summary."""
    return {
        "method": params.method,
        "exact": params.exact,
        "weighting": params.weighting if params.method == "blend" else "uniform",
        "decimate": decimation,
        "region_threshold": params.region_threshold,
        "min_region_area": params.min_region_area,
        "chips": params.chips.as_dict(),
        "model": params.model.as_dict(),
    }
