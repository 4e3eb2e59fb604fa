"""Areas of interest: a vector file (any CRS) or a bounding box, as one geometry in the working CRS."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
import shapely.affinity
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BBOX = re.compile(rf"^\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*(?:@\s*(.+))?$")


@dataclass(frozen=True, eq=False)
class Aoi:
    """An area of interest: ``geometry`` in ``crs`` (``None``: pixel coordinates of a no-CRS scene)."""

    geometry: BaseGeometry
    crs: CRS | None
    source: str


def _reproject(geometry: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    import geopandas as gpd

    return gpd.GeoSeries([geometry], crs=src).to_crs(dst).iloc[0]


def load_aoi(source: str | os.PathLike[str], scene_crs: CRS | None, target_crs: CRS | None) -> Aoi:
    """Read ``source`` and return it in ``target_crs`` (the working grid's CRS).

    ``source`` is a vector file (every geometry, unioned, reprojected from the file's CRS) or a
    bounding box ``minx,miny,maxx,maxy`` in the scene CRS, optionally ``…@EPSG:4326`` for another CRS.
    """
    text = str(source)
    match = _BBOX.match(text)
    if match:
        minx, miny, maxx, maxy = (float(match.group(i)) for i in range(1, 5))
        if not (minx < maxx and miny < maxy):
            raise InputError(text, "bounding box must be minx,miny,maxx,maxy with min < max")
        geometry: BaseGeometry = box(minx, miny, maxx, maxy)
        if match.group(5):
            try:
                crs = CRS.from_user_input(match.group(5).strip())
            except CRSError:
                raise InputError(text, f"unknown CRS {match.group(5)!r}") from None
        else:
            crs = scene_crs
    else:
        path = Path(text)
        if not path.exists():
            raise InputError(text, "AOI file not found (or give a bbox minx,miny,maxx,maxy)")
        import geopandas as gpd

        try:
            frame = gpd.read_file(path)
        except Exception as exc:
            raise InputError(text, f"not a vector file GDAL can read ({str(exc).splitlines()[0]})") from None
        frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
        if frame.empty:
            raise InputError(text, "the AOI file holds no geometry")
        if frame.crs is None:
            raise InputError(text, "the AOI file has no CRS")
        crs = CRS.from_user_input(frame.crs)
        geometry = shapely.make_valid(shapely.union_all(frame.geometry.values))
    if crs is None or target_crs is None:
        if crs is not None or target_crs is not None:
            raise InputError(text, "the scene has no CRS; an AOI in a CRS cannot be placed on it")
        return Aoi(geometry, None, text)
    if crs != target_crs:
        geometry = _reproject(geometry, crs, target_crs)
    return Aoi(geometry, target_crs, text)


def _as_array(windows: Sequence[Window] | np.ndarray) -> np.ndarray:
    if isinstance(windows, np.ndarray):
        return windows.reshape(-1, 4)
    array = getattr(windows, "array", None)  # a WindowArray
    if array is not None:
        return array
    return np.array([(w.col_off, w.row_off, w.width, w.height) for w in windows], dtype=np.float64).reshape(
        -1, 4
    )


def window_footprints(windows: Sequence[Window] | np.ndarray, grid: PixelGrid) -> np.ndarray:
    """Polygons of the windows (``Window`` objects or an (N, 4) col, row, width, height array) in the
    grid's CRS (rotated transforms included)."""
    w = _as_array(windows).astype(np.float64)
    if len(w) == 0:
        return np.empty(0, dtype=object)
    c0, r0, c1, r1 = w[:, 0], w[:, 1], w[:, 0] + w[:, 2], w[:, 1] + w[:, 3]
    cols = np.stack([c0, c1, c1, c0], axis=1)
    rows = np.stack([r0, r0, r1, r1], axis=1)
    t = grid.transform
    xs = t.a * cols + t.b * rows + t.c
    ys = t.d * cols + t.e * rows + t.f
    return shapely.polygons(np.stack([xs, ys], axis=-1))


def _geometry(aoi: Aoi | BaseGeometry) -> BaseGeometry:
    return aoi.geometry if isinstance(aoi, Aoi) else aoi


def aoi_region(grid: PixelGrid, aoi: Aoi | BaseGeometry, source: object = "aoi") -> Window:
    """The pixel window of ``grid`` around the AOI (its bounding box in pixel space, clipped to the grid,
    whole pixels). An AOI not meeting the scene is an :class:`InputError`."""
    geometry = _geometry(aoi)
    scene = window_footprints([Window(0, 0, grid.width, grid.height)], grid)[0]
    overlap = shapely.intersection(scene, geometry)
    if overlap.is_empty or (geometry.area > 0 and overlap.area <= 0):
        raise InputError(source, "the area of interest lies outside the scene")
    inverse = ~grid.transform
    pixel = shapely.affinity.affine_transform(
        overlap, [inverse.a, inverse.b, inverse.d, inverse.e, inverse.c, inverse.f]
    )
    c0, r0, c1, r1 = pixel.bounds
    c0, r0 = max(0, math.floor(c0)), max(0, math.floor(r0))
    c1, r1 = min(grid.width, math.ceil(c1)), min(grid.height, math.ceil(r1))
    return Window(c0, r0, max(1, c1 - c0), max(1, r1 - r0))


def aoi_hits(windows: Sequence[Window] | np.ndarray, grid: PixelGrid, aoi: Aoi | BaseGeometry) -> np.ndarray:
    """(N,) bool: the windows whose footprint meets the AOI (touching its border only does not count)."""
    geometry = _geometry(aoi)
    footprints = window_footprints(windows, grid)
    if len(footprints) == 0:
        return np.zeros(0, dtype=bool)
    shapely.prepare(geometry)
    return shapely.intersects(geometry, footprints) & ~shapely.touches(geometry, footprints)


def windows_in_aoi(
    windows: Sequence[Window], grid: PixelGrid, aoi: Aoi | BaseGeometry, source: object = "aoi"
) -> list[Window]:
    """The windows whose footprint meets the AOI; an AOI not meeting the scene is an InputError."""
    aoi_region(grid, aoi, source)
    hits = aoi_hits(windows, grid, aoi)
    return [w for w, hit in zip(windows, hits, strict=True) if hit]
