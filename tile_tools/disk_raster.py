"""A (C, H, W) raster kept in an unlinked temporary file, read and written by window.

The one place where block-wise stages keep O(scene) state: on disk, never mapped (pages a ``np.memmap``
touches count in the process's resident memory), read with ``preadv`` and written with ``pwrite`` row
segment by row segment, so memory is the block being read or written.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from rasterio.windows import Window

from tile_tools.blocks import whole_pixels


class DiskRaster:
    """``channels`` × ``height`` × ``width`` values of ``dtype`` (zeros at first) in a temporary file in
    ``tmpdir``; ``raster[c, rows, cols]`` reads (slices as numpy's, steps of 1), :meth:`write` writes.
    Close it (or use ``with``) to release the file."""

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        dtype: str | np.dtype = "uint8",
        tmpdir: str | None = None,
    ) -> None:
        self.shape = (channels, height, width)
        self.dtype = np.dtype(dtype)
        self._file = tempfile.TemporaryFile(prefix="tile_tools-raster-", dir=tmpdir)  # noqa: SIM115 (closed in close())
        self._fd = self._file.fileno()
        os.ftruncate(self._fd, channels * height * width * self.dtype.itemsize)

    def __enter__(self) -> DiskRaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def ndim(self) -> int:
        return 3

    def _offset(self, channel: int, row: int, col: int) -> int:
        _, height, width = self.shape
        return ((channel * height + row) * width + col) * self.dtype.itemsize

    def write(self, window: Window, data: np.ndarray, channel: int = 0) -> None:
        """Write (h, w) ``data`` at ``window`` of band ``channel`` (or (C, h, w) data to every band)."""
        (r0, r1), (c0, c1) = whole_pixels(window)
        values = np.ascontiguousarray(data, dtype=self.dtype)
        bands = values if values.ndim == 3 else values[None]
        first = 0 if values.ndim == 3 else channel
        if bands.shape[1:] != (r1 - r0, c1 - c0):
            raise ValueError(f"data of shape {values.shape} do not fit window {window}")
        for i, band in enumerate(bands):
            for r in range(r0, r1):
                os.pwrite(self._fd, band[r - r0], self._offset(first + i, r, c0))

    def __getitem__(self, index: tuple[int, slice, slice]) -> np.ndarray:
        channel, rows, cols = index
        _, height, width = self.shape
        r0, r1, _ = rows.indices(height)
        c0, c1, _ = cols.indices(width)
        out = np.empty((max(r1 - r0, 0), max(c1 - c0, 0)), self.dtype)
        for i, r in enumerate(range(r0, r1)):
            if os.preadv(self._fd, [out[i]], self._offset(int(channel), r, c0)) != out[i].nbytes:
                raise OSError("short read from a temporary raster")
        return out
