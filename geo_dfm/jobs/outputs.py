"""The finish stage's writers: stitched maps → COGs, previews and GeoPackages in the job's folder.

Each writer reads the stitched maps block by block (:class:`geo_dfm.jobs.stitch.MapBlocks`) and returns
the ``outputs`` entry of the summary with the paths the files will have once the job has finished.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from rasterio.windows import Window

from geo_dfm.jobs.naming import unique_slugs
from geo_dfm.jobs.stitch import MapBlocks, ValidMask
from tile_tools.accumulate import Block
from tile_tools.pixel_grid import PixelGrid

log = logging.getLogger(__name__)

#: Long side of overlay/preview PNGs (pixels) unless asked otherwise.
PREVIEW_MAX_SIZE = 4096


def valid_mask_of(reader: Any) -> ValidMask:
    """``valid(window, grid)``: the scene's valid-data mask sampled at the pixel centres of a window of
    ``grid`` (the reader's working grid or a decimated version of it)."""
    mask, row_scale, col_scale = reader.valid_mask_overview()
    working = reader.grid

    def valid(window: Window, grid: PixelGrid) -> np.ndarray:
        factor = max(1, round(grid.res[0] / working.res[0]))
        rows = np.arange(int(window.row_off), int(window.row_off + window.height))
        cols = np.arange(int(window.col_off), int(window.col_off + window.width))
        rows = np.minimum(((rows + 0.5) * factor / row_scale).astype(np.intp), mask.shape[0] - 1)
        cols = np.minimum(((cols + 0.5) * factor / col_scale).astype(np.intp), mask.shape[1] - 1)
        return mask[rows[:, None], cols[None, :]]

    return valid


def channel_blocks(maps: MapBlocks, channels: Sequence[int]) -> Iterator[Block]:
    """The blocks of ``maps`` restricted to ``channels``."""
    index = list(channels)
    for window, data in maps:
        yield Block(window, data[index])


def preview_factor(grid: PixelGrid, max_size: int = PREVIEW_MAX_SIZE) -> int:
    """Decimation keeping a preview of ``grid`` within ``max_size`` pixels on its long side."""
    return max(1, -(-max(grid.width, grid.height) // max_size))


def preview_maps(maps: MapBlocks, factor: int) -> np.ndarray:
    """(2C, h, w) NaN-aware area means of ``maps`` on ``grid.decimated(factor)``, from its blocks."""
    small = maps.grid.decimated(factor)
    total = np.zeros((2 * maps.channels, small.height, small.width))
    count = np.zeros_like(total)
    for window, data in maps:
        row0, col0 = int(window.row_off), int(window.col_off)
        rows = (np.arange(data.shape[1]) + row0) // factor
        cols = (np.arange(data.shape[2]) + col0) // factor
        finite = np.isfinite(data)
        values = np.where(finite, data, 0.0)
        for channel in range(data.shape[0]):
            np.add.at(total[channel], (rows[:, None], cols[None, :]), values[channel])
            np.add.at(count[channel], (rows[:, None], cols[None, :]), finite[channel])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def write_heatmap_outputs(job: Any, stitcher: Any, reader: Any, params: Any) -> dict[str, Any]:
    """One two-band COG (score, raw similarity) and one overlay PNG per query, and the hot regions of
    every query in ``regions.gpkg`` (none for a scene without CRS)."""
    import geopandas as gpd
    import pandas as pd

    from geo_dfm.jobs.common import scene_image_on
    from tile_tools.raster_writers import write_cog, write_overlay_png
    from tile_tools.vector_io import write_geopackage
    from tile_tools.vectorize import heatmap_to_polygons

    maps = stitcher.maps(valid_mask_of(reader))
    grid, count = maps.grid, maps.channels
    queries = list(params.queries)
    slugs = unique_slugs(queries)
    heatmaps, overlays, frames = {}, {}, []
    factor = preview_factor(grid)
    small = grid.decimated(factor)
    preview = preview_maps(maps, factor)
    background = scene_image_on(reader, small)
    for index, (query, slug) in enumerate(zip(queries, slugs, strict=True)):
        write_cog(
            job.path(f"{slug}.tif"),
            channel_blocks(maps, [index, count + index]),
            grid,
            band_descriptions=[f"score: {query}", f"cosine similarity: {query}"],
        )
        write_overlay_png(job.path(f"{slug}_overlay.png"), background, preview[index], small)
        heatmaps[query] = job.final(f"{slug}.tif")
        overlays[query] = job.final(f"{slug}_overlay.png")
        if grid.crs is not None:
            score = np.full((grid.height, grid.width), np.nan, np.float32)
            for window, data in channel_blocks(maps, [index]):
                score[window.toslices()] = data[0]
            frames.append(
                heatmap_to_polygons(
                    score,
                    grid,
                    threshold=params.region_threshold,
                    min_area_m2=params.min_region_area,
                    query=query,
                    valid=np.isfinite(score),
                )
            )
    outputs: dict[str, Any] = {"heatmaps": heatmaps, "overlays": overlays, "regions": None}
    if frames:
        regions = gpd.GeoDataFrame(
            pd.concat(frames, ignore_index=True), geometry="geometry", crs=frames[0].crs
        )
        write_geopackage({"regions": regions}, job.path("regions.gpkg"))
        outputs["regions"] = job.final("regions.gpkg")
    else:
        log.warning("%s: the scene has no CRS; no regions GeoPackage is written", params.scene)
    return outputs


def class_blocks(maps: MapBlocks, min_confidence: float, unlabelled: int = 255) -> Iterator[Block]:
    """(1, h, w) uint8 blocks of the class raster: argmax of the blended probabilities (the score half
    of ``maps``), ``unlabelled`` below ``min_confidence`` and outside valid data."""
    count = maps.channels
    for window, data in maps:
        probabilities = data[:count]
        valid = np.isfinite(probabilities).all(axis=0)
        filled = np.where(valid[None], probabilities, -1.0)
        classes = filled.argmax(axis=0).astype(np.uint8)
        classes[~valid | (filled.max(axis=0) < min_confidence)] = unlabelled
        yield Block(window, classes[None])


def _pixel_row_areas(grid: PixelGrid, rows: np.ndarray) -> np.ndarray:
    """Area (m²) of one pixel in each of ``rows`` (constant on projected CRSs, per row on degrees)."""
    from shapely.geometry import Polygon

    from tile_tools.vectorize import areas_m2

    t = grid.transform
    corners = [(0, 0), (1, 0), (1, 1), (0, 1)]
    pixels = [Polygon([t * (c, r + dr) for c, dr in corners]) for r in rows]
    return areas_m2(pixels, grid.crs)


def class_areas_m2(
    blocks: Iterator[Block], grid: PixelGrid, labels: Sequence[str]
) -> dict[str, float | None]:
    """Area of each class (m²) in class-raster blocks; ``None`` for every label without a CRS."""
    if grid.crs is None:
        for _ in blocks:
            pass
        return dict.fromkeys(labels)
    totals = np.zeros(len(labels))
    row_area = None
    if not grid.crs.is_geographic:
        row_area = float(_pixel_row_areas(grid, np.array([0]))[0])
    for window, data in blocks:
        classes = data[0]
        rows = np.arange(int(window.row_off), int(window.row_off + window.height))
        per_row_area = np.full(len(rows), row_area) if row_area is not None else _pixel_row_areas(grid, rows)
        for index in range(len(labels)):
            totals[index] += float(((classes == index).sum(axis=1) * per_row_area).sum())
    return {label: float(total) for label, total in zip(labels, totals, strict=True)}


def write_class_outputs(
    job: Any, stitcher: Any, reader: Any, params: Any, chips: Any
) -> tuple[dict[str, Any], dict[str, float | None]]:
    """``classes.tif`` (uint8, colour table, 255 unlabelled), ``probabilities.tif`` (one band per label),
    ``labels.gpkg`` (layers ``chips`` and dissolved ``regions``; none without CRS); returns the
    ``outputs`` entry and the area per class."""
    from tile_tools.raster_writers import write_class_raster, write_cog
    from tile_tools.vector_io import write_geopackage
    from tile_tools.vectorize import chip_labels_to_polygons, dissolve_labels

    labels = list(params.labels)
    maps = stitcher.maps(valid_mask_of(reader))
    grid = maps.grid
    classes = np.full((grid.height, grid.width), 255, np.uint8)
    for window, data in class_blocks(maps, params.min_confidence):
        classes[window.toslices()] = data[0]
    write_class_raster(job.path("classes.tif"), classes, grid, labels)
    areas = class_areas_m2(iter([Block(Window(0, 0, grid.width, grid.height), classes[None])]), grid, labels)
    write_cog(
        job.path("probabilities.tif"),
        channel_blocks(maps, range(maps.channels)),
        grid,
        band_descriptions=labels,
    )
    outputs: dict[str, Any] = {
        "classes": job.final("classes.tif"),
        "probabilities": job.final("probabilities.tif"),
        "vectors": None,
    }
    scene_grid = reader.grid
    if scene_grid.crs is not None:
        order = np.argsort(-chips.probabilities, axis=1)[:, :3]
        topk = [[(labels[j], float(chips.probabilities[i, j])) for j in row] for i, row in enumerate(order)]
        chip_frame = chip_labels_to_polygons(
            chips.window_list(),
            [labels[b] if b >= 0 else None for b in chips.best],
            chips.confidence,
            scene_grid,
            topk=topk,
        )
        regions = dissolve_labels(chip_frame[chip_frame["label"].notna()])
        write_geopackage({"chips": chip_frame, "regions": regions}, job.path("labels.gpkg"))
        outputs["vectors"] = job.final("labels.gpkg")
    else:
        log.warning("%s: the scene has no CRS; no GeoPackage is written", params.scene)
    return outputs, areas
