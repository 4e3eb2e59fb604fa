"""``PixelGrid``: a georeferenced pixel grid (size, affine transform, CRS) — the common currency.

A scene, a resampled working grid and a decimated output grid are each a ``PixelGrid``. Chip
windows are expressed in a grid's pixels; stitched outputs are written on a grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform


@dataclass(frozen=True)
class PixelGrid:
    """``height`` × ``width`` pixels placed by ``transform`` in ``crs`` (``None``: pixel-only)."""

    width: int
    height: int
    transform: Affine
    crs: CRS | None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return self.height, self.width

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS."""
        return window_bounds(Window(0, 0, self.width, self.height), self.transform)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, positive."""
        return abs(self.transform.a), abs(self.transform.e)

    def window_transform(self, window: Window) -> Affine:
        """Affine transform of a window of this grid (rasterio's own computation)."""
        return window_transform(window, self.transform)

    def decimated(self, factor: int) -> PixelGrid:
        """A coarser grid covering the same extent: one pixel per ``factor`` × ``factor`` pixels."""
        if factor < 1:
            raise ValueError(f"decimation factor must be >= 1, got {factor}")
        if factor == 1:
            return self
        return PixelGrid(
            width=math.ceil(self.width / factor),
            height=math.ceil(self.height / factor),
            transform=self.transform @ Affine.scale(factor),
            crs=self.crs,
        )
