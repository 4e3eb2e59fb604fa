"""Class maps block by block: the per-pixel argmax of blended probabilities, and class areas in m².

- :func:`label_block`: a probability :class:`~tile_tools.blocks.Block` (C, h, w) → :class:`LabelBlock`
  (uint8 class per pixel, 255 where any channel is NaN or the top probability is below
  ``min_confidence``; the top probability as the pixel's confidence).
- :class:`ClassAreas`: per-class pixel areas in true m², accumulated over the blocks of a class raster:
  geodesic per pixel row on the CRS's ellipsoid for degree CRSs (the pixel's four corners as a
  polygon), ``|det(transform)|`` × (linear unit in m)² otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyproj
from rasterio.windows import Window

from tile_tools.blocks import Block, whole_pixels
from tile_tools.pixel_grid import PixelGrid

#: The class value of unlabelled / nodata pixels.
UNLABELLED = 255


class LabelBlock(NamedTuple):
    """A block of a class map: ``classes`` (h, w) uint8 (``UNLABELLED`` = none), ``confidence`` (h, w)
    float32 (the class's probability; NaN where invalid)."""

    window: Window
    classes: np.ndarray
    confidence: np.ndarray


def label_block(block: Block, min_confidence: float = 0.0, nodata: int = UNLABELLED) -> LabelBlock:
    """Argmax of a (C, h, w) probability block; ties go to the first class (``np.argmax``)."""
    data = np.asarray(block.data)
    if data.ndim != 3 or not 1 <= data.shape[0] < nodata:
        raise ValueError(f"expected (C, h, w) probabilities with 1 <= C < {nodata}, got shape {data.shape}")
    valid = np.isfinite(data).all(axis=0)
    filled = np.where(valid[None], data, -1.0)
    classes = filled.argmax(axis=0).astype(np.uint8)
    top = filled.max(axis=0)
    classes[~valid | (top < min_confidence)] = nodata
    confidence = np.where(valid, top, np.nan).astype(np.float32)
    return LabelBlock(block.window, classes, confidence)


def _linear_unit_m(crs: pyproj.CRS) -> float:
    return crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0


class ClassAreas:
    """Accumulates per-class areas (m²) of a class raster on ``grid`` from its blocks (any order).

    ``add(window, classes)`` with (h, w) integer classes; values ``>= class_count`` (such as 255) are not
    counted. :meth:`areas_m2` → (class_count,) float64, or None when the grid has no CRS.
    """

    def __init__(self, grid: PixelGrid, class_count: int) -> None:
        self.grid = grid
        self.class_count = class_count
        self._areas = np.zeros(class_count)
        self._geod: pyproj.Geod | None = None
        self._pixel_area: float | None = None
        if grid.crs is not None:
            crs = pyproj.CRS.from_user_input(grid.crs.to_wkt())
            t = grid.transform
            if crs.is_geographic:
                self._geod = crs.get_geod()
            else:
                self._pixel_area = abs(t.a * t.e - t.b * t.d) * _linear_unit_m(crs) ** 2

    def row_areas_m2(self, row_start: int, row_stop: int) -> np.ndarray:
        """True area (m²) of one pixel in each row ``row_start … row_stop − 1`` (its first pixel)."""
        if self._pixel_area is not None:
            return np.full(row_stop - row_start, self._pixel_area)
        if self._geod is None:
            return np.full(row_stop - row_start, np.nan)
        t = self.grid.transform
        areas = np.empty(row_stop - row_start)
        for i, row in enumerate(range(row_start, row_stop)):
            corners = [t @ (0, row), t @ (1, row), t @ (1, row + 1), t @ (0, row + 1)]
            lons, lats = zip(*corners, strict=True)
            areas[i] = abs(self._geod.polygon_area_perimeter(lons, lats)[0])
        return areas

    def add(self, window: Window, classes: np.ndarray) -> None:
        (r0, r1), _ = whole_pixels(window)
        values = np.asarray(classes)
        if values.ndim != 2 or values.shape[0] != r1 - r0:
            raise ValueError(f"classes of shape {values.shape} do not fit window {window}")
        h, c = values.shape[0], self.class_count
        rows = np.broadcast_to(np.arange(h)[:, None], values.shape)
        counted = (values >= 0) & (values < c)
        cells = rows[counted] * c + values[counted].astype(np.intp)
        per_row = np.bincount(cells, minlength=h * c).reshape(h, c)
        self._areas += self.row_areas_m2(r0, r1) @ per_row

    def areas_m2(self) -> np.ndarray | None:
        return None if self.grid.crs is None else self._areas.copy()

    def as_dict(self, labels: Sequence[str]) -> dict[str, float | None]:
        """``{label: m²}`` (values None without a CRS)."""
        areas = self.areas_m2()
        if areas is None:
            return dict.fromkeys(labels)
        return {label: float(area) for label, area in zip(labels, areas, strict=True)}
