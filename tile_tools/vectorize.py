"""Vector layers from stitched results: heatmap regions, chip labels and dissolved label regions.

Geometries are built in the grid's CRS; areas are true m²: planar for projected CRSs (scaled by the
CRS's linear unit), geodesic on the CRS's ellipsoid for geographic (degree) CRSs. ``crs=`` reprojects
the result at the end. Write the frames with :func:`tile_tools.vector_io.write_geopackage`.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio.features
import shapely
from rasterio.crs import CRS
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from tile_tools.accumulate import window_span
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

REGION_COLUMNS = ["query", "max_score", "mean_score", "area_m2", "geometry"]


def areas_m2(
    geometries: Sequence[BaseGeometry] | gpd.GeoSeries, crs: CRS | pyproj.CRS | str | None
) -> np.ndarray:
    """Area of each geometry in m²: geodesic for a geographic CRS, else planar × unit²; NaN without CRS."""
    geoms = list(geometries)
    if crs is None:
        return np.full(len(geoms), np.nan)
    proj = pyproj.CRS.from_user_input(crs.to_wkt() if isinstance(crs, CRS) else crs)
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
    ``top_percent`` % of the valid pixels."""
    if (threshold is None) == (top_percent is None):
        raise InputError("threshold", "give exactly one of threshold or top_percent")
    if threshold is not None:
        return float(threshold)
    if not 0 < top_percent <= 100:  # type: ignore[operator]
        raise InputError("top_percent", f"must be in (0, 100], got {top_percent}")
    values = heat[valid]
    if values.size == 0:
        return np.inf
    return float(np.percentile(values, 100.0 - top_percent))  # type: ignore[operator]


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
) -> gpd.GeoDataFrame:
    """Polygons of the regions where an (H, W) heatmap on ``grid`` is ≥ a threshold.

    - ``threshold`` (absolute score) or ``top_percent`` (the hottest % of valid pixels): exactly one;
    - regions are 4-connected pixel sets (holes kept); ``min_area_m2`` drops smaller ones (true m²,
      also on degree CRSs); ``simplify`` is a tolerance in pixels (topology preserved);
    - attributes: ``query``, ``max_score``, ``mean_score`` (over the region's pixels), ``area_m2``
      (of the unsimplified polygon); rows sorted by ``max_score``, hottest first.
    """
    if heat.shape != grid.shape:
        raise InputError(
            "heat", f"heatmap is {heat.shape[::-1]} pixels but the grid is {grid.width}x{grid.height}"
        )
    ok = np.isfinite(heat) if valid is None else np.isfinite(heat) & valid
    level = heatmap_threshold(heat, ok, threshold, top_percent)
    labels, count = ndimage.label(ok & (heat >= level))
    geometries: list[BaseGeometry] = []
    label_ids: list[int] = []
    if count:
        parts: dict[int, list[BaseGeometry]] = {}
        for geojson, value in rasterio.features.shapes(
            labels.astype(np.int32), mask=labels > 0, transform=grid.transform, connectivity=4
        ):
            parts.setdefault(int(value), []).append(shape(geojson))
        label_ids = sorted(parts)
        geometries = [shapely.union_all(parts[i]) if len(parts[i]) > 1 else parts[i][0] for i in label_ids]
    index = np.asarray(label_ids, dtype=np.int64)
    scores = np.where(ok, heat, 0.0)
    max_score = ndimage.maximum(scores, labels, index) if count else []
    mean_score = ndimage.mean(scores, labels, index) if count else []
    area = areas_m2(geometries, grid.crs)
    if simplify > 0 and geometries:
        tolerance = simplify * float(np.mean(grid.res))
        geometries = list(
            shapely.simplify(np.asarray(geometries, dtype=object), tolerance, preserve_topology=True)
        )
    records = {
        "query": [query] * len(geometries),
        "max_score": np.asarray(max_score, dtype=np.float64),
        "mean_score": np.asarray(mean_score, dtype=np.float64),
        "area_m2": area,
    }
    frame = _frame(records, geometries, grid.crs)
    if min_area_m2 > 0:
        if grid.crs is None:
            raise InputError("min_area_m2", "needs a grid with a CRS")
        frame = frame[frame["area_m2"] >= min_area_m2]
    frame = frame.sort_values("max_score", ascending=False, kind="stable").reset_index(drop=True)
    return _to_crs(frame[REGION_COLUMNS], crs)


def _footprint(item: Window | BaseGeometry, grid: PixelGrid) -> BaseGeometry:
    if isinstance(item, BaseGeometry):
        return item
    row0, row1, col0, col1 = window_span(item)
    x0, y0 = grid.transform @ (max(col0, 0), max(row0, 0))
    x1, y1 = grid.transform @ (min(col1, grid.width), min(row1, grid.height))
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


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
