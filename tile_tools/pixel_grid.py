"""``PixelGrid``: a georeferenced pixel grid (size, affine transform, CRS) — the common currency.

A scene, a resampled working grid and a decimated output grid are each a ``PixelGrid``. Chip
windows are expressed in a grid's pixels; stitched outputs are written on a grid. Transforms may
be rotated or sheared (GDAL geotransforms with non-zero ``b``/``d``) and y may point up or down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
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
    def corners(self) -> tuple[tuple[float, float], ...]:
        """(x, y) of the four outer pixel corners: top-left, top-right, bottom-right, bottom-left."""
        t = self.transform
        return tuple(
            t @ (col, row)
            for col, row in ((0, 0), (self.width, 0), (self.width, self.height), (0, self.height))
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS: the box around all four corners (exact for
        rotated, sheared and south-up transforms)."""
        xs, ys = zip(*self.corners, strict=True)
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, positive: the lengths of a pixel's two edges (rotation-free)."""
        t = self.transform
        return math.hypot(t.a, t.d), math.hypot(t.b, t.e)

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

    def decimation_to(self, grid: PixelGrid) -> int:
        """The factor ``f`` with ``grid == self.decimated(f)``; ``ValueError`` when ``grid`` is not one."""
        res, other = self.res, grid.res
        factor = max(1, round(other[0] / res[0])) if res[0] > 0 else 1
        expected = self.decimated(factor)
        same_transform = all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * factor * max(res))
            for a, b in zip(grid.transform[:6], expected.transform[:6], strict=True)
        )
        if (
            (grid.width, grid.height) != (expected.width, expected.height)
            or grid.crs != expected.crs
            or not same_transform
        ):
            raise ValueError(f"{grid} is not a decimated version of {self}")
        return factor

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: width, height, ``geotransform`` (GDAL order) and ``crs`` (WKT or ``None``)."""
        return {
            "width": int(self.width),
            "height": int(self.height),
            "geotransform": list(self.transform.to_gdal()),
            "crs": None if self.crs is None else self.crs.to_wkt(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PixelGrid:
        """Inverse of :meth:`to_dict`."""
        crs = data.get("crs")
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            transform=Affine.from_gdal(*(float(v) for v in data["geotransform"])),
            crs=None if crs is None else CRS.from_user_input(crs),
        )
