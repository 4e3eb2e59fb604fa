"""``localize``: one heatmap per text query over a scene (semantic localization).

Two methods share one pass over the scene (every chip encoded once, then one dot product per
query):

- ``blend`` (default): chips of the model's input size (or ``--chip-size``/``--scales`` in pixels
  or metres) with overlap; each chip's cosine similarity is splatted with a Hann (or Gaussian,
  uniform) window into a weighted accumulator, optionally on a decimated output grid; band 1 is
  the scene-wide min–max normalised mean similarity.
- ``selo``: the reference SeLo v1 map (selo.md §1): windows of 256/512/768 px, each crop resized
  to 256×256 bicubic, the caption verbatim, uniform mean (exact, on the compressed grid of window
  edges), min–max, ``uint8`` truncation, 251 median with replicated border; band 1 is ``g / 255``.
  ``exact`` adds the reference's JPEG (q95) round trips of every crop and of ``g``.

Band 2 of every COG is the raw mean cosine similarity; pixels outside valid data are nodata.
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
    check_queries,
    check_scene,
    encode_windows,
    load_job_encoder,
    model_input_size,
    model_summary,
    open_chip_plan,
    scene_image_on,
    text_embeddings,
    valid_mask_on,
)
from geo_dfm.jobs.naming import unique_slugs
from geo_dfm.jobs.params import ChipParams, ModelParams
from geo_dfm.jobs.selo import selo_map_round_trip, selo_preparer
from geo_dfm.jobs.summary import (
    StageTimer,
    grid_summary,
    make_summary,
    write_summary,
)
from geo_dfm.progress import Progress
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

log = logging.getLogger(__name__)

METHODS = ("blend", "selo")
WEIGHTINGS = ("hann", "gaussian", "uniform")
#: Above this many output pixels, ``blend`` decimates automatically (``--decimate`` overrides).
AUTO_DECIMATE_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class LocalizeParams:
    """Everything ``localize`` needs (see the module docstring for the methods)."""

    scene: str
    queries: tuple[str, ...]
    output: str
    overwrite: bool = False
    method: str = "blend"
    exact: bool = False
    weighting: str = "hann"
    decimate: int | None = None
    region_threshold: float = 0.5
    min_region_area: float = 0.0
    chips: ChipParams = field(default_factory=ChipParams)
    model: ModelParams = field(default_factory=ModelParams)


@dataclass(frozen=True)
class Heatmaps:
    """The stitched maps of all queries on ``grid``: ``score`` (Q, H, W) in [0, 1] and
    ``similarity`` (Q, H, W) mean cosine similarity, both NaN outside ``valid`` (H, W)."""

    grid: PixelGrid
    score: np.ndarray
    similarity: np.ndarray
    valid: np.ndarray
    chip_count: int
    decimation: int = 1


def check_params(params: LocalizeParams) -> None:
    if params.method not in METHODS:
        raise InputError("--method", f"unknown method {params.method!r}; choose blend or selo")
    if params.weighting not in WEIGHTINGS:
        raise InputError("--weighting", f"unknown weighting {params.weighting!r}")
    if params.exact and params.method != "selo":
        raise InputError("--exact", "only applies to --method selo")
    if params.method == "selo" and params.decimate not in (None, 1):
        raise InputError("--decimate", "selo maps are computed at full resolution")
    if params.method == "selo" and params.chips.xyz_zoom is not None:
        raise InputError("--xyz", "selo uses its own windows; XYZ tiles need --method blend")


def _stitch_selo(plan: Any, scores: np.ndarray, exact: bool) -> Heatmaps:
    from tile_tools.accumulate import selo_mean
    from tile_tools.postprocess import selo_postprocess

    grid = plan.reader.grid
    similarity = selo_mean(plan.windows, scores, grid.height, grid.width)  # (Q, H, W)
    valid = valid_mask_on(plan.reader, grid) & np.isfinite(similarity).all(axis=0)
    score = np.stack([selo_postprocess(channel, valid) for channel in similarity])
    if exact:
        score = np.stack([selo_map_round_trip(channel) for channel in score])
    similarity[:, ~valid] = np.nan
    return Heatmaps(grid, score, similarity, valid, len(plan.windows))


def _stitch_blend(plan: Any, scores: np.ndarray, weighting: str, decimation: int) -> Heatmaps:
    from tile_tools.accumulate import WeightedAccumulator
    from tile_tools.postprocess import minmax_normalize

    grid = plan.reader.grid
    with WeightedAccumulator(grid, scores.shape[1], weight=weighting, decimation=decimation) as acc:
        for window, values in zip(plan.windows, scores, strict=True):
            acc.add(window, values)
        similarity = acc.mean()
        valid = acc.valid_mask() & valid_mask_on(plan.reader, acc.output_grid)
        out_grid = acc.output_grid
    similarity[:, ~valid] = np.nan
    score = minmax_normalize(similarity, valid)
    return Heatmaps(out_grid, score, similarity, valid, len(plan.windows), decimation)


def compute_heatmaps(params: LocalizeParams, encoder: Any, progress: Progress, timer: StageTimer):
    """Plan the chips, encode them once, score every query, stitch: (:class:`Heatmaps`, reader info)."""
    selo = params.method == "selo"
    with timer.stage("plan chips"):
        progress.stage("plan chips")
        chips = params.chips
        plan = open_chip_plan(
            params.scene, chips, model_input_size(encoder), layout="selo" if selo else "regular"
        )
    with plan:
        with timer.stage("encode texts"):
            texts = text_embeddings(encoder, params.queries)
        with timer.stage("encode images"):
            images = encode_windows(
                plan.reader,
                plan.windows,
                encoder,
                params.model.batch_size,
                progress,
                prepare=selo_preparer(params.exact) if selo else None,
            )
        scores = images @ texts.T  # (N, Q) cosine similarities
        with timer.stage("stitch"):
            progress.stage("stitch", total=None)
            if selo:
                maps = _stitch_selo(plan, scores, params.exact)
            else:
                maps = _stitch_blend(
                    plan,
                    scores,
                    params.weighting,
                    auto_decimation(plan.reader.grid, params.decimate, AUTO_DECIMATE_MAX_PIXELS),
                )
        with timer.stage("preview"):
            background = scene_image_on(plan.reader, maps.grid)
    return maps, background


def write_outputs(
    folder: Path, target: Path, params: LocalizeParams, maps: Heatmaps, background: np.ndarray
) -> dict[str, Any]:
    """Write every output into ``folder`` (the temporary twin of ``target``); returns the
    ``outputs`` entry of the summary, with paths under ``target``."""
    import geopandas as gpd
    import pandas as pd

    from tile_tools.raster_writers import write_cog, write_overlay_png
    from tile_tools.vector_io import write_geopackage
    from tile_tools.vectorize import heatmap_to_polygons

    grid = maps.grid
    heatmaps, overlays, frames = {}, {}, []
    for index, (query, slug) in enumerate(zip(params.queries, unique_slugs(params.queries), strict=True)):
        score, similarity = maps.score[index], maps.similarity[index]
        write_cog(
            folder / f"{slug}.tif",
            np.stack([score, similarity]),
            grid,
            band_descriptions=[f"score: {query}", f"cosine similarity: {query}"],
            valid=maps.valid,
        )
        write_overlay_png(folder / f"{slug}_overlay.png", background, score, grid, valid=maps.valid)
        heatmaps[query] = str(target / f"{slug}.tif")
        overlays[query] = str(target / f"{slug}_overlay.png")
        if grid.crs is not None:
            frames.append(
                heatmap_to_polygons(
                    score,
                    grid,
                    threshold=params.region_threshold,
                    min_area_m2=params.min_region_area,
                    query=query,
                    valid=maps.valid,
                )
            )
    outputs: dict[str, Any] = {"heatmaps": heatmaps, "overlays": overlays, "regions": None}
    if frames:
        regions = gpd.GeoDataFrame(
            pd.concat(frames, ignore_index=True), geometry="geometry", crs=frames[0].crs
        )
        write_geopackage({"regions": regions}, folder / "regions.gpkg")
        outputs["regions"] = str(target / "regions.gpkg")
    else:
        log.warning("%s: the scene has no CRS; no regions GeoPackage is written", params.scene)
    outputs["summary"] = str(target / "summary.json")
    return outputs


def run_localize(params: LocalizeParams, progress: Progress) -> dict[str, Any]:
    """Run ``localize`` and return its summary (also written to ``OUT/summary.json``)."""
    from tile_tools.atomic import atomic_directory

    timer = StageTimer()
    queries = check_queries(params.queries)
    check_params(params)
    target = check_output_free(params.output, params.overwrite)
    scene = check_scene(params.scene)
    params = replace(params, scene=str(scene), queries=queries)
    with timer.stage("load model"):
        progress.stage("load model")
        encoder = load_job_encoder(params.model)
    maps, background = compute_heatmaps(params, encoder, progress, timer)
    progress.stage("write outputs")
    with atomic_directory(target, overwrite=params.overwrite) as folder:
        with timer.stage("write outputs"):
            outputs = write_outputs(folder, target, params, maps, background)
        summary = make_summary(
            "localize",
            model_summary(encoder),
            parameters_of(params, maps),
            timer,
            maps.grid.crs,
            outputs,
            queries=list(queries),
            scene=str(scene),
            grid=grid_summary(maps.grid),
            chips=maps.chip_count,
        )
        write_summary(summary, folder / "summary.json")
    return summary


def parameters_of(params: LocalizeParams, maps: Heatmaps) -> dict[str, Any]:
    """The ``parameters`` entry of the summary."""
    return {
        "method": params.method,
        "exact": params.exact,
        "weighting": params.weighting if params.method == "blend" else "uniform",
        "decimate": maps.decimation,
        "region_threshold": params.region_threshold,
        "min_region_area": params.min_region_area,
        "chips": params.chips.as_dict(),
        "model": params.model.as_dict(),
    }
