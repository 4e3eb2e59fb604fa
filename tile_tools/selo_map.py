"""The exact SeLo mean as a compressed map, read block by block.

The SeLo accumulation (selo.md §1.3: every window equal weight, the plain mean of the scores of all
windows covering a pixel) is piecewise constant between window edges. :class:`SeloMap` holds it on the
compressed grid of those edges — (C, rows, cols) cells, a few hundred per axis even for a 100 000-pixel
scene — and produces any block of the full-resolution or decimated map from the cells:
:meth:`SeloMap.iter_blocks` streams the whole map, nothing of scene size in memory.
:func:`tile_tools.accumulate.selo_mean` assembles the same blocks into one array.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from tile_tools.block_stats import ChannelStats
from tile_tools.blocks import Block, block_windows, whole_pixels


def _overlaps(edges: np.ndarray, size: int, factor: int, start: int, stop: int) -> tuple[int, np.ndarray]:
    """Overlap lengths of output pixels ``start … stop − 1`` (``factor`` source pixels each, the last
    clipped to ``size``) with the compressed cells between ``edges``: (first cell, (n_out × cells))."""
    lo_src, hi_src = start * factor, min(stop * factor, size)
    first = int(np.searchsorted(edges, lo_src, side="right")) - 1
    last = int(np.searchsorted(edges, hi_src, side="left"))
    out_edges = np.minimum(np.arange(start, stop + 1) * factor, size)
    lo = np.maximum(out_edges[:-1, None], edges[None, first:last])
    hi = np.minimum(out_edges[1:, None], edges[None, first + 1 : last + 1])
    return first, np.clip(hi - lo, 0, None).astype(np.float64)


@dataclass(frozen=True, eq=False)
class SeloMap:
    """The SeLo mean of ``height`` × ``width`` pixels on its compressed grid: cell (i, j) spans rows
    ``row_edges[i] … row_edges[i+1]`` and columns ``col_edges[j] … col_edges[j+1]``; ``cells`` (C, I, J)
    float64 mean score (0 where uncovered), ``covered`` (I, J) bool."""

    height: int
    width: int
    row_edges: np.ndarray
    col_edges: np.ndarray
    cells: np.ndarray
    covered: np.ndarray

    @property
    def channels(self) -> int:
        return self.cells.shape[0]

    @classmethod
    def from_windows(
        cls, windows: Iterable[Window], scores: np.ndarray | Iterable[float], height: int, width: int
    ) -> SeloMap:
        """``scores`` (N,) or (N, C), one row per window (windows clipped to the grid; outside ones skipped)."""
        spans = np.array([np.ravel(whole_pixels(w)) for w in windows], dtype=np.int64).reshape(-1, 4)
        values = np.asarray(scores, dtype=np.float64)
        if values.shape[:1] != (len(spans),) or values.ndim not in (1, 2):
            raise ValueError(
                f"scores must be (N,) or (N, C) with N = {len(spans)} windows, got {values.shape}"
            )
        values = values.reshape(len(spans), -1)
        channels = values.shape[1]
        spans[:, 0:2] = np.clip(spans[:, 0:2], 0, height)
        spans[:, 2:4] = np.clip(spans[:, 2:4], 0, width)
        keep = (spans[:, 1] > spans[:, 0]) & (spans[:, 3] > spans[:, 2])
        spans, values = spans[keep], values[keep]
        row_edges = np.unique(np.concatenate([[0, height], spans[:, 0], spans[:, 1]]))
        col_edges = np.unique(np.concatenate([[0, width], spans[:, 2], spans[:, 3]]))
        nr, nc = len(row_edges), len(col_edges)
        r0, r1 = np.searchsorted(row_edges, spans[:, 0]), np.searchsorted(row_edges, spans[:, 1])
        c0, c1 = np.searchsorted(col_edges, spans[:, 2]), np.searchsorted(col_edges, spans[:, 3])
        planes = np.concatenate([values, np.ones((len(spans), 1))], axis=1)  # sums..., count
        corners = [(r0, c0, 1.0), (r0, c1, -1.0), (r1, c0, -1.0), (r1, c1, 1.0)]
        diff = np.zeros((channels + 1, nr * nc))
        for p in range(channels + 1):
            for rr, cc, sign in corners:
                diff[p] += np.bincount(rr * nc + cc, weights=sign * planes[:, p], minlength=nr * nc)
        totals = diff.reshape(channels + 1, nr, nc).cumsum(axis=1).cumsum(axis=2)[:, :-1, :-1]
        count = np.rint(totals[-1])
        covered = count > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            cells = np.where(covered, totals[:-1] / count, 0.0)
        return cls(height, width, row_edges, col_edges, cells, covered)

    def output_shape(self, decimation: int = 1) -> tuple[int, int]:
        return math.ceil(self.height / decimation), math.ceil(self.width / decimation)

    def read(self, window: Window, decimation: int = 1, fill: float = np.nan) -> np.ndarray:
        """(C, h, w) float32 of ``window`` in the (decimated) output grid: full resolution = the cells'
        values; decimated = the mean over the covered source pixels of each output pixel."""
        if decimation < 1:
            raise ValueError(f"decimation must be >= 1, got {decimation}")
        (o0, o1), (p0, p1) = whole_pixels(window)
        height, width = self.output_shape(decimation)
        if o0 < 0 or p0 < 0 or o1 > height or p1 > width or o1 <= o0 or p1 <= p0:
            raise ValueError(f"window {window} is not inside the {width}x{height} output grid")
        if decimation == 1:
            rows = np.searchsorted(self.row_edges, np.arange(o0, o1), side="right") - 1
            cols = np.searchsorted(self.col_edges, np.arange(p0, p1), side="right") - 1
            covered = self.covered[np.ix_(rows, cols)]
            values = self.cells[:, rows][:, :, cols]
            return np.where(covered, values.astype(np.float32), np.float32(fill))
        i0, rows_m = _overlaps(self.row_edges, self.height, decimation, o0, o1)
        j0, cols_m = _overlaps(self.col_edges, self.width, decimation, p0, p1)
        i1, j1 = i0 + rows_m.shape[1], j0 + cols_m.shape[1]
        area = rows_m @ self.covered[i0:i1, j0:j1].astype(np.float64) @ cols_m.T
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (rows_m @ self.cells[:, i0:i1, j0:j1] @ cols_m.T) / area
        return np.where(area > 0, mean, fill).astype(np.float32)

    def iter_blocks(
        self, decimation: int = 1, block_size: int = 1024, fill: float = np.nan
    ) -> Iterator[Block]:
        """The (decimated) map as :class:`Block` s in row-major tiling order."""
        height, width = self.output_shape(decimation)
        for window in block_windows(height, width, block_size):
            yield Block(window, self.read(window, decimation, fill))

    def channel_stats(self) -> ChannelStats:
        """Statistics of the full-resolution map over its covered pixels, from the cells alone (equal to
        ``ChannelStats.from_blocks(self.iter_blocks())``; sums up to rounding)."""
        values = self.cells.astype(np.float32).astype(np.float64)
        area = np.outer(np.diff(self.row_edges), np.diff(self.col_edges))[self.covered]
        inside = values[:, self.covered]
        return ChannelStats(
            inside.min(axis=1, initial=np.inf),
            inside.max(axis=1, initial=-np.inf),
            np.full(self.channels, int(area.sum()), np.int64),
            inside @ area.astype(np.float64),
        )
