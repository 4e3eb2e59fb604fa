"""Blocks of a stitched output: the value object every block-wise stage passes on, and its tilings.

A :class:`Block` is one window of an output grid with its data, (C, h, w); NaN marks invalid pixels.
Stages that need neighbours (seam merging, previews, halos) take blocks in *row-major tiling order*,
the order :func:`block_windows` (and ``WeightedAccumulator.iter_blocks``) yields: block rows top to
bottom, each row left to right, every block of a row with the same offset and height.
:class:`RowMajorTiling` checks that order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from rasterio.windows import Window


class Block(NamedTuple):
    """One block of a stitched output: ``window`` in the output grid, ``data`` (C, h, w) float32."""

    window: Window
    data: np.ndarray


def whole_pixels(window: Window) -> tuple[tuple[int, int], tuple[int, int]]:
    """((row_start, row_stop), (col_start, col_stop)) of ``window`` snapped to whole pixels, not clipped
    (rasterio's ``round_offsets`` then ``round_lengths``)."""
    (r0, r1), (c0, c1) = window.round_offsets().round_lengths().toranges()
    return (int(r0), int(r1)), (int(c0), int(c1))


def block_windows(height: int, width: int, block_size: int) -> Iterator[Window]:
    """A ``height`` × ``width`` grid cut into ``block_size`` blocks, in row-major tiling order."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    for row in range(0, height, block_size):
        for col in range(0, width, block_size):
            yield Window(col, row, min(block_size, width - col), min(block_size, height - row))


def array_blocks(
    array: np.ndarray, block_size: int = 1024, valid: np.ndarray | None = None
) -> Iterator[Block]:
    """Cut an (H, W) or (C, H, W) array into :class:`Block` s (row-major tiling order), NaN outside
    ``valid`` (H, W bool) for float data. The data are views or small copies, never the whole array."""
    data = array[None] if array.ndim == 2 else array
    if data.ndim != 3:
        raise ValueError(f"expected an (H, W) or (C, H, W) array, got shape {array.shape}")
    if valid is not None and valid.shape != data.shape[1:]:
        raise ValueError(f"valid mask shape {valid.shape} differs from the data's {data.shape[1:]}")
    for window in block_windows(data.shape[1], data.shape[2], block_size):
        rows, cols = window.toslices()
        piece = np.asarray(data[:, rows, cols])
        if valid is not None:
            piece = np.where(valid[rows, cols], piece, np.nan)
        yield Block(window, piece)


class RowMajorTiling:
    """Checks that windows arrive in row-major tiling order over an ``height`` × ``width`` grid.

    :meth:`next` returns ``(row, col, h, w, row_done)``; ``row_done`` is True for the last block of a
    block row. A window out of order raises ``ValueError`` (a bug of the caller, not user input).
    """

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self._row, self._col, self._row_height = 0, 0, 0

    @property
    def complete(self) -> bool:
        """True once every pixel of the grid has been covered."""
        return self._row >= self.height

    def next(self, window: Window) -> tuple[int, int, int, int, bool]:
        (r0, r1), (c0, c1) = whole_pixels(window)
        h, w = r1 - r0, c1 - c0
        expected = (self._row, self._col)
        if (r0, c0) != expected or h < 1 or w < 1 or c1 > self.width or r1 > self.height:
            raise ValueError(
                f"block {window} out of row-major tiling order over {self.width}x{self.height}: "
                f"expected a block at row {expected[0]}, column {expected[1]}"
            )
        if c0 == 0:
            self._row_height = h
        elif h != self._row_height:
            raise ValueError(f"block {window} is {h} rows high; its block row is {self._row_height}")
        row_done = c1 == self.width
        if row_done:
            self._row, self._col = r1, 0
        else:
            self._col = c1
        return r0, c0, h, w, row_done
