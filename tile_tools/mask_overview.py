"""``MaskOverview``: a scene's valid-data mask at a bounded size, and what it answers for any window.

The reader computes it once from a decimated read (GDAL overviews when present): exact (one overview
pixel per working-grid pixel) for working grids up to ``mask_max_size`` px on the long side, coarser
above. It answers the valid fraction of chip windows (vectorised over an (N, 4) window array) and
samples the mask on any window of any decimated version of the working grid, so stitched outputs get
their valid mask block by block, never as a whole-output array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

from tile_tools.pixel_grid import PixelGrid

_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class MaskOverview:
    """``mask`` (h, w) bool, True = valid, describing ``grid`` (the working grid): overview pixel (i, j)
    stands for working-grid rows ``i·row_scale … (i+1)·row_scale`` and columns ``j·col_scale …``."""

    mask: np.ndarray
    grid: PixelGrid
    _integral: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != bool or 0 in self.mask.shape:
            raise ValueError(
                f"the mask must be a non-empty 2-D bool array, got {self.mask.dtype} {self.mask.shape}"
            )
        dtype = np.int32 if self.mask.size < 2**31 else np.int64  # 4096² masks: 64 MiB, not 128
        integral = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), dtype=dtype)
        np.cumsum(self.mask, axis=0, dtype=dtype, out=integral[1:, 1:])
        np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
        object.__setattr__(self, "_integral", integral)

    @property
    def row_scale(self) -> float:
        """Working-grid rows per overview row."""
        return self.grid.height / self.mask.shape[0]

    @property
    def col_scale(self) -> float:
        """Working-grid columns per overview column."""
        return self.grid.width / self.mask.shape[1]

    @property
    def exact(self) -> bool:
        """True when the overview has one pixel per working-grid pixel."""
        return self.mask.shape == self.grid.shape

    def any(self) -> bool:
        return bool(self.mask.any())

    def valid_fractions(self, windows: np.ndarray) -> np.ndarray:
        """(N,) float64 valid fractions of an (N, 4) array of ``col_off, row_off, width, height`` windows of
        the working grid (exact for an exact overview; parts outside the grid count as invalid)."""
        w = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
        col, row, width, height = w.T
        mh, mw = self.mask.shape
        rs, cs = self.row_scale, self.col_scale
        area = width * height
        r0 = np.maximum(row, 0.0) / rs
        r1 = np.minimum(self.grid.height, row + height) / rs
        c0 = np.maximum(col, 0.0) / cs
        c1 = np.minimum(self.grid.width, col + width) / cs
        hit = (area > 0) & (r1 > r0) & (c1 > c0)
        i0 = np.clip(np.floor(r0 + _EPS), 0, mh - 1).astype(np.int64)
        j0 = np.clip(np.floor(c0 + _EPS), 0, mw - 1).astype(np.int64)
        i1 = np.minimum(np.maximum(i0 + 1, np.ceil(r1 - _EPS)), mh).astype(np.int64)
        j1 = np.minimum(np.maximum(j0 + 1, np.ceil(c1 - _EPS)), mw).astype(np.int64)
        ii = self._integral
        valid = ii[i1, j1].astype(np.int64) - ii[i0, j1] - ii[i1, j0] + ii[i0, j0]
        inside = (r1 - r0) * rs * (c1 - c0) * cs
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = valid / ((i1 - i0) * (j1 - j0)) * inside / area
        return np.where(hit, fraction, 0.0)

    def valid_fraction(self, window: Window) -> float:
        """Valid fraction of one working-grid ``window``."""
        row = (window.col_off, window.row_off, window.width, window.height)
        return float(self.valid_fractions(np.array([row], dtype=np.float64))[0])

    def sample(self, grid: PixelGrid | None = None, window: Window | None = None) -> np.ndarray:
        """The mask at the pixel centres of ``window`` (default: all) of ``grid`` (default: the working
        grid), a decimated version of the working grid (``working.decimated(f)``): (h, w) bool.

        Pixels whose centre falls outside the working grid are invalid.
        """
        grid = self.grid if grid is None else grid
        factor = self.grid.decimation_to(grid)
        window = Window(0, 0, grid.width, grid.height) if window is None else window
        col, row = int(window.col_off), int(window.row_off)
        width, height = int(window.width), int(window.height)
        rows = (np.arange(row, row + height) + 0.5) * factor
        cols = (np.arange(col, col + width) + 0.5) * factor
        row_in = (rows >= 0) & (rows < self.grid.height)
        col_in = (cols >= 0) & (cols < self.grid.width)
        mh, mw = self.mask.shape
        ri = np.clip(np.floor(rows / self.row_scale).astype(np.int64), 0, mh - 1)
        ci = np.clip(np.floor(cols / self.col_scale).astype(np.int64), 0, mw - 1)
        return self.mask[ri[:, None], ci[None, :]] & row_in[:, None] & col_in[None, :]

    def __repr__(self) -> str:
        h, w = self.mask.shape
        return f"MaskOverview({w}×{h} px for a {self.grid.width}×{self.grid.height} grid, {math.fsum([self.mask.mean()]):.0%} valid)"
