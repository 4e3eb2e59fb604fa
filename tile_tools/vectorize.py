"""Vector layers from stitched results: heatmap regions, class regions, chip labels, dissolved labels.

Heatmap and class-map regions are computed block by block (:class:`HeatRegions`, :class:`ClassRegions`,
on :mod:`tile_tools.block_regions`), merged exactly across block seams; :func:`heatmap_to_polygons` and
:func:`class_map_to_polygons` are their whole-array front ends.

Geometries are built in the grid's CRS; areas are true m²: planar for projected CRSs (scaled by the
CRS's linear unit), geodesic on the CRS's ellipsoid for geographic (degree) CRSs. ``crs=`` reprojects
the result at the end. Write the frames with :func:`tile_tools.vector_io.write_geopackage`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from rasterio.crs import CRS
from rasterio.windows import Window, crop
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from tile_tools.block_regions import BlockRegions, RegionRecord, pixel_to_crs
from tile_tools.block_stats import blocks_percentile
from tile_tools.blocks import array_blocks, block_windows
from tile_tools.class_blocks import LabelBlock
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

REGION_COLUMNS = ["query", "max_score", "mean_score", "area_m2", "geometry"]


@functools.lru_cache(maxsize=16)
def _pyproj_crs(crs: str | pyproj.CRS) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(crs)


def areas_m2(
    geometries: Sequence[BaseGeometry] | gpd.GeoSeries, crs: CRS | pyproj.CRS | str | None
) -> np.ndarray:
    """Area of each geometry in m²: geodesic for a geographic CRS, else planar × unit²; NaN without CRS."""
    geoms = list(geometries)
    if crs is None:
        return np.full(len(geoms), np.nan)
    proj = _pyproj_crs(crs.to_wkt() if isinstance(crs, CRS) else crs)
    if proj.is_geographic:
        geod = proj.get_geod()
        return np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in geoms], dtype=np.float64)
    unit = proj.axis_info[0].unit_conversion_factor if proj.axis_info else 1.0
    return shapely.area(np.asarray(geoms, dtype=object)).astype(np.float64) * unit**2


def _frame(records: dict[str, object], geometry: list[BaseGeometry], crs: CRS | None) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(records, geometry=geometry, crs=None if crs is None else crs.to_wkt())


def _to_crs(frame: gpd.GeoDataFrame, crs: CRS | str | None) -> gpd.GeoDataFrame:
    if crs is None:
        return frame
    if frame.crs is None:
        raise InputError("crs", "cannot reproject: the grid has no CRS")
    target = crs.to_wkt() if isinstance(crs, CRS) else crs
    return frame.to_crs(target)


def heatmap_threshold(
    heat: np.ndarray, valid: np.ndarray, threshold: float | None, top_percent: float | None
) -> float:
    """The absolute threshold: ``threshold`` itself, or the score above which lie the top
    ``top_percent`` % of the valid pixels (``np.percentile(heat[valid], 100 − top_percent)``)."""
    return threshold_of_blocks(lambda: [np.where(valid, heat, np.nan)], threshold, top_percent)


def threshold_of_blocks(
    values: Callable[[], Iterable[np.ndarray]], threshold: float | None, top_percent: float | None
) -> float:
    """:func:`heatmap_threshold` for a heatmap in blocks: ``values()`` yields its arrays (NaN = invalid)
    on every call; with ``top_percent`` the exact percentile takes 2 (at most 5) passes
    (:func:`tile_tools.block_stats.blocks_percentile`). ``inf`` when no pixel is valid."""
    if (threshold is None) == (top_percent is None):
        raise InputError("threshold", "give exactly one of threshold or top_percent")
    if threshold is not None:
        return float(threshold)
    if not 0 < top_percent <= 100:  # type: ignore[operator]
        raise InputError("top_percent", f"must be in (0, 100], got {top_percent}")
    level = blocks_percentile(values, 100.0 - top_percent)  # type: ignore[operator]
    return np.inf if np.isnan(level) else level


def _region_rows(
    records: Iterable[RegionRecord], grid: PixelGrid, min_area_m2: float, simplify: float
) -> list[tuple[RegionRecord, BaseGeometry, float]]:
    """Records → (record, geometry in the grid's CRS, area m² of the unsimplified polygon), filtered
    by ``min_area_m2`` and simplified by ``simplify`` pixels."""
    rows = []
    for record in records:
        geometry = pixel_to_crs(record.geometry, grid.transform)
        area = float(areas_m2([geometry], grid.crs)[0])
        if min_area_m2 > 0 and not area >= min_area_m2:
            continue
        if simplify > 0:
            geometry = shapely.simplify(geometry, simplify * float(np.mean(grid.res)), preserve_topology=True)
        rows.append((record, geometry, area))
    return rows


def _check_vector_options(grid: PixelGrid, min_area_m2: float, simplify: float) -> None:
    if min_area_m2 > 0 and grid.crs is None:
        raise InputError("min_area_m2", "needs a grid with a CRS")
    if min_area_m2 < 0:
        raise InputError("min_area_m2", f"must be >= 0, got {min_area_m2}")
    if simplify < 0:
        raise InputError("simplify", f"must be >= 0 pixels, got {simplify}")


class HeatRegions:
    """Polygons of the regions where a heatmap on ``grid`` is ≥ ``threshold``, fed block by block.

    ``add(window, heat)`` with (h, w) heat (NaN = invalid) in row-major tiling order (e.g. from
    ``WeightedAccumulator.iter_blocks``); :meth:`frame` gives what :func:`heatmap_to_polygons` gives
    for the whole array: regions are 4-connected pixel sets (holes kept), merged exactly across block
    seams; ``min_area_m2`` drops smaller ones (true m², also on degree CRSs); ``simplify`` is a
    tolerance in pixels (topology preserved); columns ``query``, ``max_score``, ``mean_score``,
    ``area_m2`` (of the unsimplified polygon), hottest first. Memory: the open regions and the
    polygons found.
    """

    def __init__(
        self,
        grid: PixelGrid,
        threshold: float,
        query: str = "",
        min_area_m2: float = 0.0,
        simplify: float = 0.0,
    ) -> None:
        _check_vector_options(grid, min_area_m2, simplify)
        self.grid, self.threshold, self.query = grid, float(threshold), query
        self.min_area_m2, self.simplify = min_area_m2, simplify
        self._regions = BlockRegions(grid.height, grid.width)
        self._rows: list[tuple[RegionRecord, BaseGeometry, float]] = []

    def add(self, window: Window, heat: np.ndarray) -> None:
        values = np.asarray(heat, dtype=np.float64)
        if values.ndim == 3 and values.shape[0] == 1:
            values = values[0]
        with np.errstate(invalid="ignore"):
            classes = np.where(values >= self.threshold, 0, -1)  # NaN compares False: never a region
        done = self._regions.add(window, classes, values)
        self._rows.extend(_region_rows(done, self.grid, self.min_area_m2, self.simplify))

    def frame(self, crs: CRS | str | None = None) -> gpd.GeoDataFrame:
        """The regions as a GeoDataFrame in the grid's CRS (or reprojected to ``crs``)."""
        rows = self._rows + _region_rows(self._regions.finish(), self.grid, self.min_area_m2, self.simplify)
        rows.sort(key=lambda r: (-r[0].max, r[0].first))
        self._rows = rows
        records = {
            "query": [self.query] * len(rows),
            "max_score": np.array([r.max for r, _, _ in rows], dtype=np.float64),
            "mean_score": np.array([r.sum / r.count for r, _, _ in rows], dtype=np.float64),
            "area_m2": np.array([a for _, _, a in rows], dtype=np.float64),
        }
        frame = _frame(records, [g for _, g, _ in rows], self.grid.crs)
        return _to_crs(frame[REGION_COLUMNS], crs)


def heatmap_to_polygons(
    heat: np.ndarray,
    grid: PixelGrid,
    threshold: float | None = None,
    top_percent: float | None = None,
    min_area_m2: float = 0.0,
    simplify: float = 0.0,
    query: str = "",
    valid: np.ndarray | None = None,
    crs: CRS | str | None = None,
    block_size: int = 1024,
) -> gpd.GeoDataFrame:
    """Polygons of the regions where an (H, W) heatmap on ``grid`` is ≥ a threshold (see :class:`HeatRegions`).

    ``threshold`` (absolute score) or ``top_percent`` (the hottest % of valid pixels): exactly one.
    """
    if heat.shape != grid.shape:
        raise InputError(
            "heat", f"heatmap is {heat.shape[::-1]} pixels but the grid is {grid.width}x{grid.height}"
        )
    ok = np.isfinite(heat) if valid is None else np.isfinite(heat) & valid
    level = heatmap_threshold(heat, ok, threshold, top_percent)
    regions = HeatRegions(grid, level, query, min_area_m2, simplify)
    for window, data in array_blocks(heat, block_size, ok):
        regions.add(window, data[0])
    return regions.frame(crs)


class ClassRegions:
    """Dissolved class polygons of a dense per-pixel class map, fed block by block: one polygon per
    4-connected region of equal class (holes kept), merged exactly across block seams.

    ``add(block)`` takes a :class:`~tile_tools.class_blocks.LabelBlock` (classes ``>= len(class_names)``
    such as 255 are no region) in row-major tiling order. :meth:`frame` columns: ``label``,
    ``mean_confidence`` (mean of the pixels' confidence over the region), ``area_m2``; sorted by label,
    then largest first.
    """

    def __init__(
        self, grid: PixelGrid, class_names: Sequence[str], min_area_m2: float = 0.0, simplify: float = 0.0
    ) -> None:
        _check_vector_options(grid, min_area_m2, simplify)
        self.grid, self.class_names = grid, list(class_names)
        self.min_area_m2, self.simplify = min_area_m2, simplify
        self._regions = BlockRegions(grid.height, grid.width)
        self._rows: list[tuple[RegionRecord, BaseGeometry, float]] = []

    def add(self, block: LabelBlock) -> None:
        classes = np.asarray(block.classes).astype(np.int64)
        classes = np.where(classes < len(self.class_names), classes, -1)
        values = np.where(classes >= 0, np.asarray(block.confidence, dtype=np.float64), 0.0)
        done = self._regions.add(block.window, classes, values)
        self._rows.extend(_region_rows(done, self.grid, self.min_area_m2, self.simplify))

    def frame(self, crs: CRS | str | None = None) -> gpd.GeoDataFrame:
        rows = self._rows + _region_rows(self._regions.finish(), self.grid, self.min_area_m2, self.simplify)
        rows.sort(key=lambda r: (self.class_names[r[0].cls], -r[2], r[0].first))
        self._rows = rows
        records = {
            "label": [self.class_names[r.cls] for r, _, _ in rows],
            "mean_confidence": np.array([r.sum / r.count for r, _, _ in rows], dtype=np.float64),
            "area_m2": np.array([a for _, _, a in rows], dtype=np.float64),
        }
        return _to_crs(_frame(records, [g for _, g, _ in rows], self.grid.crs), crs)


def class_map_to_polygons(
    classes: np.ndarray,
    confidence: np.ndarray,
    grid: PixelGrid,
    class_names: Sequence[str],
    min_area_m2: float = 0.0,
    simplify: float = 0.0,
    crs: CRS | str | None = None,
    block_size: int = 1024,
) -> gpd.GeoDataFrame:
    """Dissolved class polygons of an (H, W) class array (255 = none) with its (H, W) confidence
    (see :class:`ClassRegions`)."""
    if classes.shape != grid.shape or confidence.shape != grid.shape:
        raise ValueError(
            f"classes {classes.shape} and confidence {confidence.shape} differ from the grid {grid.shape}"
        )
    regions = ClassRegions(grid, class_names, min_area_m2, simplify)
    for window in block_windows(grid.height, grid.width, block_size):
        rows, cols = window.toslices()
        regions.add(LabelBlock(window, classes[rows, cols], confidence[rows, cols]))
    return regions.frame(crs)


def _footprint(item: Window | BaseGeometry, grid: PixelGrid) -> BaseGeometry:
    if isinstance(item, BaseGeometry):
        return item
    inside = crop(item.round_offsets().round_lengths(), grid.height, grid.width)
    return box(*window_bounds(inside, grid.transform))


def _format_topk(pairs: Sequence[tuple[str, float]]) -> str:
    return "; ".join(f"{label}: {score:.3f}" for label, score in pairs)


def chip_labels_to_polygons(
    windows: Sequence[Window | BaseGeometry],
    labels: Sequence[str],
    confidences: Sequence[float],
    grid: PixelGrid,
    topk: Sequence[Sequence[tuple[str, float]]] | None = None,
    crs: CRS | str | None = None,
) -> gpd.GeoDataFrame:
    """One polygon per chip: its footprint (a window of ``grid``, clipped to it, or a geometry in the
    grid's CRS) with ``label``, ``confidence``, ``area_m2`` and, with ``topk`` (per chip: the best
    (label, score) pairs), a text column ``top{k}`` like ``"water: 0.812; forest: 0.101; town: 0.050"``.
    """
    if not len(windows) == len(labels) == len(confidences):
        raise InputError(
            "labels", f"{len(windows)} chips, {len(labels)} labels, {len(confidences)} confidences"
        )
    geometries = [_footprint(w, grid) for w in windows]
    records: dict[str, object] = {
        "label": list(labels),
        "confidence": np.asarray(confidences, dtype=np.float64),
    }
    if topk is not None:
        if len(topk) != len(windows):
            raise InputError("topk", f"{len(topk)} top-k lists for {len(windows)} chips")
        k = max((len(pairs) for pairs in topk), default=0)
        records[f"top{k}"] = [_format_topk(pairs) for pairs in topk]
    records["area_m2"] = areas_m2(geometries, grid.crs)
    return _to_crs(_frame(records, geometries, grid.crs), crs)


def dissolve_labels(chips: gpd.GeoDataFrame, crs: CRS | str | None = None) -> gpd.GeoDataFrame:
    """Regions of equal label: chip polygons of one label merged, split into connected parts.

    Columns: ``label``, ``mean_confidence`` (over all chips of the label), ``area_m2`` (of the part).
    Overlapping chips of different labels give overlapping regions of different labels.
    """
    columns = ["label", "mean_confidence", "area_m2", "geometry"]
    if chips.empty:
        return gpd.GeoDataFrame({c: [] for c in columns[:-1]}, geometry=[], crs=chips.crs)
    merged = chips[["label", "confidence", "geometry"]].dissolve(by="label", aggfunc={"confidence": "mean"})
    merged = merged.rename(columns={"confidence": "mean_confidence"}).reset_index()
    parts = merged.explode(index_parts=False).reset_index(drop=True)
    parts["area_m2"] = areas_m2(parts.geometry, parts.crs)
    parts = parts.sort_values(["label", "area_m2"], ascending=[True, False], kind="stable").reset_index(
        drop=True
    )
    return _to_crs(gpd.GeoDataFrame(pd.DataFrame(parts[columns]), geometry="geometry", crs=parts.crs), crs)
