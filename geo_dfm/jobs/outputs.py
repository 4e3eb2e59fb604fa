"""The finish stage's writers: stitched maps → COGs, previews and GeoPackages in the job's folder.

Each writer makes one pass over the stitched maps (:class:`geo_dfm.jobs.stitch.MapBlocks`), feeding every
output from the same block — one COG per query, its overlay PNG and its hot regions; or the class raster,
the probabilities, the area per class and the class regions — so N queries cost one read of the
accumulator, not N, and nothing of output size is ever held in memory. Each returns the ``outputs``
entry of the summary with the paths the files will have once the job has finished.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np

from geo_dfm.jobs.naming import unique_slugs

log = logging.getLogger(__name__)

#: Long side of overlay/preview PNGs (pixels) unless asked otherwise.
PREVIEW_MAX_SIZE = 4096


def write_heatmap_outputs(
    job: Any, stitcher: Any, reader: Any, params: Any, preview_size: int | None = PREVIEW_MAX_SIZE
) -> dict[str, Any]:
    """Per query: ``<slug>.tif`` (band 1 score, band 2 raw similarity), ``<slug>_overlay.png`` (bounded
    size, georeferenced) and its hot regions in ``regions.gpkg`` (none for a scene without CRS)."""
    import geopandas as gpd
    import pandas as pd

    from tile_tools.preview import PreviewGrid, PreviewWriter
    from tile_tools.raster_writers import CogWriter
    from tile_tools.vector_io import write_geopackage
    from tile_tools.vectorize import HeatRegions

    maps = stitcher.maps(reader.valid_mask_overview())
    grid, count = maps.grid, maps.channels
    queries = list(params.queries)
    slugs = unique_slugs(queries)
    preview = PreviewGrid.bounded(grid, preview_size)
    background = reader.read_image_on(preview.grid).image
    with contextlib.ExitStack() as stack:
        cogs = [
            stack.enter_context(
                CogWriter(
                    job.path(f"{slug}.tif"),
                    grid,
                    2,
                    band_descriptions=[f"score: {query}", f"cosine similarity: {query}"],
                )
            )
            for query, slug in zip(queries, slugs, strict=True)
        ]
        overlays = [
            stack.enter_context(PreviewWriter(job.path(f"{slug}_overlay.png"), preview, background))
            for slug in slugs
        ]
        regions = (
            [
                HeatRegions(grid, params.region_threshold, query=query, min_area_m2=params.min_region_area)
                for query in queries
            ]
            if grid.crs is not None
            else []
        )
        for window, data in maps:
            for index in range(count):
                score = data[index]
                cogs[index].write(window, data[[index, count + index]])
                overlays[index].write(window, score)
                if regions:
                    regions[index].add(window, score)
    outputs: dict[str, Any] = {
        "heatmaps": {q: job.final(f"{s}.tif") for q, s in zip(queries, slugs, strict=True)},
        "overlays": {q: job.final(f"{s}_overlay.png") for q, s in zip(queries, slugs, strict=True)},
        "regions": None,
    }
    if regions:
        frames = [r.frame() for r in regions]
        frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=frames[0].crs)
        write_geopackage({"regions": frame}, job.path("regions.gpkg"))
        outputs["regions"] = job.final("regions.gpkg")
    else:
        log.warning("%s: the scene has no CRS; no regions GeoPackage is written", params.scene)
    return outputs


def write_class_outputs(
    job: Any, stitcher: Any, reader: Any, params: Any, chips: Any, pixel_regions: bool = False
) -> tuple[dict[str, Any], dict[str, float | None]]:
    """``classes.tif`` (uint8, colour table, 255 unlabelled), ``probabilities.tif`` (one band per label),
    ``labels.gpkg`` (layers ``chips`` and dissolved ``regions``; none without CRS); returns the
    ``outputs`` entry and the area per class (m², ``None`` without CRS). ``regions`` dissolves the
    labelled chips, or with ``pixel_regions`` the class raster itself (fed in the same pass; regions
    below ``params.min_region_area`` m² left out)."""
    from tile_tools.blocks import Block
    from tile_tools.class_blocks import ClassAreas, label_block
    from tile_tools.raster_writers import ClassRasterWriter, CogWriter
    from tile_tools.vector_io import write_geopackage
    from tile_tools.vectorize import ClassRegions, chip_labels_to_polygons, dissolve_labels

    labels = list(params.labels)
    maps = stitcher.maps(reader.valid_mask_overview())
    grid, count = maps.grid, maps.channels
    areas = ClassAreas(grid, count)
    has_crs = reader.grid.crs is not None
    regions = ClassRegions(grid, labels, params.min_region_area) if pixel_regions and has_crs else None
    with (
        ClassRasterWriter(job.path("classes.tif"), grid, labels) as classes,
        CogWriter(job.path("probabilities.tif"), grid, count, band_descriptions=labels) as probabilities,
    ):
        for window, data in maps:
            block = label_block(Block(window, data[:count]), params.min_confidence)
            classes.write(window, block.classes)
            probabilities.write(window, data[:count])
            areas.add(window, block.classes)
            if regions is not None:
                regions.add(block)
    outputs: dict[str, Any] = {
        "classes": job.final("classes.tif"),
        "probabilities": job.final("probabilities.tif"),
        "vectors": None,
    }
    scene_grid = reader.grid
    if has_crs:
        order = np.argsort(-chips.probabilities, axis=1)[:, :3]
        topk = [[(labels[j], float(chips.probabilities[i, j])) for j in row] for i, row in enumerate(order)]
        chip_frame = chip_labels_to_polygons(
            chips.window_list(),
            [labels[b] if b >= 0 else None for b in chips.best],
            chips.confidence,
            scene_grid,
            topk=topk,
        )
        dissolved = (
            regions.frame()
            if regions is not None
            else dissolve_labels(chip_frame[chip_frame["label"].notna()])
        )
        write_geopackage({"chips": chip_frame, "regions": dissolved}, job.path("labels.gpkg"))
        outputs["vectors"] = job.final("labels.gpkg")
    else:
        log.warning("%s: the scene has no CRS; no GeoPackage is written", params.scene)
    return outputs, areas.as_dict(labels)
