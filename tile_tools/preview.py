"""Bounded previews: colour-mapped heatmap PNGs and SeLo overlays rendered from blocks.

- :class:`PreviewGrid`: the grid a preview is drawn on — the output grid decimated by an integer
  ``factor`` so that its long side is at most ``max_size`` (default 4096) pixels; its transform is the
  output grid's composed with the scale (``transform @ Affine.scale(factor)``), so the preview lies
  exactly over the output. Full resolution (``max_size=None``) only for outputs of at most
  ``FULL_PREVIEW_MAX_PIXELS``.
- :class:`PreviewWriter`: fed the output's heat blocks (row-major tiling order), it takes the NaN-aware
  area mean of each ``factor`` × ``factor`` cell into the preview grid, holding only the preview rows the
  current block row touches, renders finished rows (colour map; over a background image:
  ``(1 − w)·image + w·colour``, bit-identical to OpenCV's ``addWeighted``) into a temporary
  file, and writes an RGBA PNG georeferenced by a GDAL ``.aux.xml`` (CRS and geotransform), atomically.
  Pixels without valid heat are transparent.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from tile_tools.blocks import RowMajorTiling
from tile_tools.colormaps import apply_colormap
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.staged_output import StagedOutput

#: Default long side (pixels) of overlay and preview PNGs.
DEFAULT_PREVIEW_SIZE = 4096
#: A full-resolution preview is refused above this many pixels (8000 × 8000).
FULL_PREVIEW_MAX_PIXELS = 64_000_000
#: Preview rows rendered at once (bounds the colour and blending temporaries).
RENDER_ROWS = 32


#: PNG compression of previews (GDAL's ZLEVEL, 1–9).
PNG_ZLEVEL = 1


@dataclass(frozen=True)
class PreviewGrid:
    """A preview of ``source`` (the output grid): one preview pixel per ``factor`` × ``factor`` pixels."""

    source: PixelGrid
    factor: int

    @property
    def grid(self) -> PixelGrid:
        """The preview's own grid (``source.decimated(factor)``)."""
        return self.source.decimated(self.factor)

    @classmethod
    def bounded(cls, source: PixelGrid, max_size: int | None = DEFAULT_PREVIEW_SIZE) -> PreviewGrid:
        """The smallest integer ``factor`` that brings the long side to ``max_size`` pixels or less;
        ``None`` = full resolution, refused (``InputError``) above ``FULL_PREVIEW_MAX_PIXELS``."""
        if max_size is None:
            pixels = source.width * source.height
            if pixels > FULL_PREVIEW_MAX_PIXELS:
                raise InputError(
                    "preview_size",
                    f"a full-resolution preview of {source.width}x{source.height} pixels "
                    f"({pixels / 1e6:.0f} Mpx) is more than {FULL_PREVIEW_MAX_PIXELS / 1e6:.0f} Mpx; "
                    f"give a preview size (default {DEFAULT_PREVIEW_SIZE})",
                )
            return cls(source, 1)
        if max_size < 1:
            raise InputError("preview_size", f"must be >= 1 pixel, got {max_size}")
        return cls(source, max(1, math.ceil(max(source.width, source.height) / max_size)))


def add_weighted(first: np.ndarray, alpha: float, second: np.ndarray, beta: float) -> np.ndarray:
    """``first·alpha + second·beta`` of two uint8 arrays, bit-identical to OpenCV's
    ``cv2.addWeighted(first, alpha, second, beta, 0)``: float32 weights, ``fma(first, alpha,
    second·beta)`` rounded to float32, then to the nearest integer (ties to even), saturated. The float64
    temporaries hold exact products of a few rows (the caller's band), never a whole image."""
    a, b = np.float64(np.float32(alpha)), np.float64(np.float32(beta))
    inner = (second * b).astype(np.float32)  # exact product, rounded once, as the inner fma
    outer = (first * a + inner).astype(np.float32)  # exact product + float32, rounded once
    return np.clip(np.rint(outer), 0, 255).astype(np.uint8)


class PreviewWriter(StagedOutput):
    """An RGBA PNG of heat blocks on ``preview.grid``: ``with PreviewWriter(path, preview) as w:
    w.write(window, heat)`` — ``heat`` (h, w) in [0, 1] (NaN = invalid) at ``window`` of
    ``preview.source``, blocks in row-major tiling order.

    ``background`` (h', w', 3) uint8 on ``preview.grid`` turns the preview into the SeLo overlay
    ``(1 − heat_weight)·background + heat_weight·colour(heat)``; ``colormap`` is ``"jet"`` | ``"viridis"``.
    Memory: the preview rows of one block row, plus ``background``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        preview: PreviewGrid,
        background: np.ndarray | None = None,
        colormap: str = "jet",
        heat_weight: float = 0.3,
    ) -> None:
        super().__init__(path)
        self.preview = preview
        self.grid = preview.grid
        if background is not None and (
            background.ndim != 3 or background.shape != (self.grid.height, self.grid.width, 3)
        ):
            raise ValueError(
                f"background must be ({self.grid.height}, {self.grid.width}, 3) uint8 on the preview grid, "
                f"got {background.shape}"
            )
        apply_colormap(np.zeros((1, 1)), colormap)  # unknown names fail here, not at the end
        self.background = background
        self.colormap = colormap
        self.heat_weight = float(heat_weight)
        self._tiling = RowMajorTiling(preview.source.height, preview.source.width)
        self._first_row = 0  # first preview row still in the buffer
        self._sum = np.zeros((0, self.grid.width))
        self._count = np.zeros((0, self.grid.width), np.int64)

    def _staging_profile(self) -> tuple[str, dict]:
        profile = {
            "driver": "GTiff",
            "width": self.grid.width,
            "height": self.grid.height,
            "count": 4,
            "dtype": "uint8",
            "photometric": "RGB",
            "ALPHA": "YES",
            "crs": self.grid.crs,
            "transform": self.grid.transform,
        }
        return "rgba.tif", profile

    # -- feeding -------------------------------------------------------------------------------
    def write(self, window: Window, heat: np.ndarray) -> None:
        """Add the (h, w) heat block at ``window`` of the output grid."""
        self._writer()  # fails when not open
        values = np.asarray(heat, dtype=np.float64)
        if values.ndim == 3 and values.shape[0] == 1:
            values = values[0]
        row, col, h, w, _ = self._tiling.next(window)
        if values.shape != (h, w):
            raise ValueError(f"heat of shape {np.shape(heat)} does not fit window {window}")
        f = self.preview.factor
        self._flush(row // f)  # every preview row above this block row is complete
        p0, p1 = row // f, -(-(row + h) // f)
        q0, q1 = col // f, -(-(col + w) // f)
        padded = np.full(((p1 - p0) * f, (q1 - q0) * f), np.nan)
        padded[row - p0 * f : row - p0 * f + h, col - q0 * f : col - q0 * f + w] = values
        cells = padded.reshape(p1 - p0, f, q1 - q0, f)
        valid = np.isfinite(cells)
        self._grow(p1)
        rows = slice(p0 - self._first_row, p1 - self._first_row)
        self._sum[rows, q0:q1] += np.where(valid, cells, 0.0).sum(axis=(1, 3))
        self._count[rows, q0:q1] += valid.sum(axis=(1, 3))

    def _grow(self, stop: int) -> None:
        extra = stop - self._first_row - self._sum.shape[0]
        if extra > 0:
            self._sum = np.concatenate([self._sum, np.zeros((extra, self.grid.width))])
            self._count = np.concatenate([self._count, np.zeros((extra, self.grid.width), np.int64)])

    def _flush(self, stop: int) -> None:
        """Render and write the buffered preview rows above ``stop``."""
        n = min(stop - self._first_row, self._sum.shape[0])
        dst = self._writer()
        for start in range(0, max(n, 0), RENDER_ROWS):  # a few rows at a time: small temporaries
            rows = slice(start, min(start + RENDER_ROWS, n))
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(self._count[rows] > 0, self._sum[rows] / self._count[rows], np.nan)
            rgba = self._render(mean, self._first_row + start)
            dst.write(rgba, window=Window(0, self._first_row + start, self.grid.width, rgba.shape[1]))
        if n > 0:
            self._sum, self._count = self._sum[n:], self._count[n:]
            self._first_row += n

    def _render(self, heat: np.ndarray, first_row: int) -> np.ndarray:
        """(4, n, w') uint8 RGBA of preview rows ``first_row …`` from their mean heat (n, w')."""
        ok = np.isfinite(heat)
        colours = apply_colormap(heat, self.colormap)
        if self.background is not None:
            image = self.background[first_row : first_row + heat.shape[0]]
            blended = add_weighted(image, 1.0 - self.heat_weight, colours, self.heat_weight)
            colours = np.where(ok[..., None], blended, image)
        alpha = np.where(ok, 255, 0).astype(np.uint8)
        return np.concatenate([colours.transpose(2, 0, 1), alpha[None]], axis=0)

    # -- finishing -----------------------------------------------------------------------------
    def _before_close(self) -> None:
        if not self._tiling.complete:
            raise ValueError(f"{self.path}: the blocks written do not cover the output grid")
        self._flush(self.grid.height)

    def _finish(self) -> None:
        # zlib level 1: measured 7.6× faster than level 6 for 19 % more bytes on a 3000² RGBA overlay
        rasterio.shutil.copy(self._staging, self._tmp, driver="PNG", ZLEVEL=PNG_ZLEVEL)
