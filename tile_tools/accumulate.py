"""Stitching chip results into maps: weighted accumulators and the exact SeLo mean.

Two tools, both placing values on a :class:`~tile_tools.pixel_grid.PixelGrid`:

- :class:`WeightedAccumulator` takes ``(window, values)`` pairs — one score per chip and channel, or a
  small per-chip map — and keeps a *sum* plane per channel and one *weight* plane. The result is the
  weighted mean ``sum / weight``. Window weights are ``"uniform"`` (every pixel of a window counts once:
  the SeLo mean), ``"hann"`` or ``"gaussian"`` splats; a tapering splat never tapers on a side where the
  window touches (or overhangs) the scene's own border, so border pixels keep full weight. Output can be
  decimated (one output pixel per ``factor`` × ``factor`` source pixels): an output pixel then holds
  the mean of every value whose splat reaches its source pixels, weighted by the splat's weight summed
  over them. Large outputs live on disk in tiles behind a small fixed-size cache, so peak memory does
  not grow with the scene.
- :func:`selo_mean` computes the SeLo accumulation (every window equal weight, plain mean of the scores
  of all windows covering a pixel) exactly on the compressed grid of window edges, where it is piecewise
  constant: a fraction of a second for a 10k × 10k scene instead of a per-pixel loop
  (``benchmarks/selo_mean_speed.py``).

Windows are rasterio ``Window`` objects in the source grid's pixels, snapped to whole pixels with
rasterio's ``round_offsets``/``round_lengths``; a window may reach beyond the grid (chips padded at the
border) and is clipped. Read the result block by block (:meth:`WeightedAccumulator.iter_blocks`,
:meth:`~WeightedAccumulator.weighted_blocks`, :meth:`~WeightedAccumulator.read`): nothing of output
size is ever in memory; ``mean()``/``weight_coverage()`` assemble whole arrays for small grids and tests.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, NamedTuple

import numpy as np
from rasterio.windows import Window

from tile_tools.blocks import Block, block_windows, whole_pixels
from tile_tools.pixel_grid import PixelGrid

WeightKind = Literal["uniform", "hann", "gaussian"]
StorageKind = Literal["auto", "memory", "disk"]
WEIGHT_KINDS: tuple[str, ...] = ("uniform", "hann", "gaussian")

#: ``storage="auto"`` keeps the sum and weight planes in memory up to this many bytes, else on disk.
AUTO_MEMORY_LIMIT_BYTES = 64 * 2**20
#: Side (output pixels) of the tiles of disk storage: small, so the cache holds many of them.
DISK_TILE = 128


class WeightedBlock(NamedTuple):
    """One block of an accumulator: ``window`` in the output grid, ``mean`` (C, h, w) float32 (NaN where
    no weight), ``weight`` (h, w) float32 — the summed splat weight (0 = no window touched it)."""

    window: Window
    mean: np.ndarray
    weight: np.ndarray


# ----------------------------------------------------------------------------------- weights


def _axis_profile(start: int, stop: int, size: int, kind: str, sigma: float) -> np.ndarray:
    """Weight profile along one axis of a window [start, stop) of a grid axis of ``size`` pixels.

    Samples sit at pixel centres, so a Hann splat is never exactly zero inside its window. The side
    of the profile facing the scene border is held at the peak when the window reaches that border.
    """
    length = stop - start
    if kind == "uniform":
        return np.ones(length)
    centres = np.arange(length) + 0.5
    if kind == "hann":
        profile = np.sin(np.pi * centres / length) ** 2
    else:  # gaussian, sigma as a fraction of the window size
        profile = np.exp(-0.5 * ((centres - length / 2) / (sigma * length)) ** 2)
    profile /= profile.max()
    if start <= 0:
        profile[: int(np.argmax(profile))] = 1.0
    if stop >= size:
        profile[length - 1 - int(np.argmax(profile[::-1])) :] = 1.0
    return profile


def _interpolation_matrix(length: int, samples: int) -> np.ndarray:
    """(length × samples) linear interpolation of ``samples`` values spread over ``length`` pixels.

    Pixel-centre aligned (like bilinear resizing with ``align_corners=False``), edges clamped.
    """
    if samples == 1:
        return np.ones((length, 1))
    if samples == length:
        return np.eye(length)
    position = np.clip((np.arange(length) + 0.5) * samples / length - 0.5, 0, samples - 1)
    lower = np.minimum(np.floor(position).astype(np.intp), samples - 2)
    frac = position - lower
    matrix = np.zeros((length, samples))
    rows = np.arange(length)
    matrix[rows, lower] = 1.0 - frac
    matrix[rows, lower + 1] = frac
    return matrix


class _AxisSplat(NamedTuple):
    """One axis of a splat: first output index and (n_out × samples) weighted, binned matrix."""

    out_start: int
    matrix: np.ndarray


def _axis_splat(
    start: int, stop: int, size: int, samples: int, kind: str, sigma: float, factor: int
) -> _AxisSplat | None:
    lo, hi = max(start, 0), min(stop, size)
    if hi <= lo:
        return None
    weights = _axis_profile(start, stop, size, kind, sigma)[lo - start : hi - start]
    interp = _interpolation_matrix(stop - start, samples)[lo - start : hi - start]
    weighted = weights[:, None] * interp
    out_index = np.arange(lo, hi) // factor
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(out_index)) + 1])
    return _AxisSplat(int(out_index[0]), np.add.reduceat(weighted, bounds, axis=0))


# ----------------------------------------------------------------------------------- storage


class _MemoryPlanes:
    """Sum and weight planes as one in-memory float64 array (planes, H, W)."""

    def __init__(self, planes: int, height: int, width: int) -> None:
        self._data = np.zeros((planes, height, width))

    def add(self, row: int, col: int, contrib: np.ndarray) -> None:
        _, h, w = contrib.shape
        self._data[:, row : row + h, col : col + w] += contrib

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        return self._data[:, row : row + height, col : col + width].copy()

    def close(self) -> None:
        self._data = np.zeros((0, 0, 0))


class _DiskPlanes:
    """Sum and weight planes tiled on disk (an unlinked temporary file) behind an LRU block cache.

    Memory use is the cache (``cache_bytes``) plus one block, whatever the output size.
    """

    def __init__(
        self, planes: int, height: int, width: int, block: int, cache_bytes: int, tmpdir: str | None
    ) -> None:
        self._planes, self._height, self._width, self._block = planes, height, width, block
        self._block_cols = math.ceil(width / block)
        self._block_bytes = planes * block * block * 8
        self._file = tempfile.TemporaryFile(prefix="tile_tools-accumulate-", dir=tmpdir)  # noqa: SIM115 (closed in close())
        self._fd = self._file.fileno()
        os.ftruncate(self._fd, math.ceil(height / block) * self._block_cols * self._block_bytes)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._max_cached = max(1, cache_bytes // self._block_bytes)
        self._touched: set[tuple[int, int]] = set()

    def _offset(self, key: tuple[int, int]) -> int:
        return (key[0] * self._block_cols + key[1]) * self._block_bytes

    def _load(self, key: tuple[int, int]) -> np.ndarray:
        shape = (self._planes, self._block, self._block)
        if key not in self._touched:
            return np.zeros(shape)
        block = np.empty(shape)
        if os.preadv(self._fd, [block], self._offset(key)) != self._block_bytes:
            raise OSError("short read from the accumulator's temporary file")
        return block

    def _cached(self, key: tuple[int, int]) -> np.ndarray:
        block = self._cache.get(key)
        if block is not None:
            self._cache.move_to_end(key)
            return block
        while len(self._cache) >= self._max_cached:
            old_key, old = self._cache.popitem(last=False)
            os.pwrite(self._fd, old, self._offset(old_key))
            self._touched.add(old_key)
        block = self._load(key)
        self._cache[key] = block
        return block

    def add(self, row: int, col: int, contrib: np.ndarray) -> None:
        _, h, w = contrib.shape
        b = self._block
        for bi in range(row // b, (row + h - 1) // b + 1):
            r0, r1 = max(row, bi * b), min(row + h, (bi + 1) * b)
            for bj in range(col // b, (col + w - 1) // b + 1):
                c0, c1 = max(col, bj * b), min(col + w, (bj + 1) * b)
                tile = self._cached((bi, bj))
                tile[:, r0 - bi * b : r1 - bi * b, c0 - bj * b : c1 - bj * b] += contrib[
                    :, r0 - row : r1 - row, c0 - col : c1 - col
                ]

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        out = np.empty((self._planes, height, width))
        b = self._block
        for bi in range(row // b, (row + height - 1) // b + 1):
            r0, r1 = max(row, bi * b), min(row + height, (bi + 1) * b)
            for bj in range(col // b, (col + width - 1) // b + 1):
                c0, c1 = max(col, bj * b), min(col + width, (bj + 1) * b)
                cached = self._cache.get((bi, bj))
                tile = cached if cached is not None else self._load((bi, bj))
                out[:, r0 - row : r1 - row, c0 - col : c1 - col] = tile[
                    :, r0 - bi * b : r1 - bi * b, c0 - bj * b : c1 - bj * b
                ]
        return out

    def close(self) -> None:
        self._cache.clear()
        self._file.close()


# ------------------------------------------------------------------------------- accumulator


class WeightedAccumulator:
    """Weighted mean of chip results over a grid: ``add(window, values)`` … ``mean()`` / ``iter_blocks()``.

    - ``grid``: the source grid the windows refer to; results are on :attr:`output_grid`
      (``grid.decimated(decimation)``).
    - ``channels``: number of values per chip (queries, classes).
    - ``weight``: ``"uniform"`` | ``"hann"`` | ``"gaussian"`` (``gaussian_sigma`` × window size).
    - ``storage``: ``"memory"``, ``"disk"`` (128-pixel tiles in a temporary file in ``tmpdir``, at
      most ``cache_mb`` of them in memory) or ``"auto"`` (disk above 64 MiB of planes).
    - ``block_size``: side of the output blocks :meth:`iter_blocks` yields (and of the disk tiles).

    Adding is order-independent up to float64 rounding. Pixels no window touched have zero weight:
    they are ``fill`` in :meth:`mean` and False in :meth:`valid_mask`.
    """

    def __init__(
        self,
        grid: PixelGrid,
        channels: int,
        weight: WeightKind = "uniform",
        decimation: int = 1,
        storage: StorageKind = "auto",
        block_size: int = 256,
        cache_mb: float = 4.0,
        gaussian_sigma: float = 0.25,
        tmpdir: str | None = None,
    ) -> None:
        if weight not in WEIGHT_KINDS:
            raise ValueError(f"weight must be one of {WEIGHT_KINDS}, got {weight!r}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        if gaussian_sigma <= 0:
            raise ValueError(f"gaussian_sigma must be > 0, got {gaussian_sigma}")
        self.grid = grid
        self.output_grid = grid.decimated(decimation)
        self.channels = channels
        self.weight = weight
        self.decimation = decimation
        self.block_size = block_size
        self._sigma = gaussian_sigma
        height, width = self.output_grid.height, self.output_grid.width
        plane_bytes = (channels + 1) * height * width * 8
        if storage == "auto":
            storage = "memory" if plane_bytes <= AUTO_MEMORY_LIMIT_BYTES else "disk"
        if storage == "memory":
            self._planes: _MemoryPlanes | _DiskPlanes = _MemoryPlanes(channels + 1, height, width)
        elif storage == "disk":
            cache_bytes = int(cache_mb * 2**20)
            tile = min(block_size, DISK_TILE)
            self._planes = _DiskPlanes(channels + 1, height, width, tile, cache_bytes, tmpdir)
        else:
            raise ValueError(f"storage must be 'auto', 'memory' or 'disk', got {storage!r}")
        self.storage: str = storage

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> WeightedAccumulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the planes (and the temporary file of disk storage)."""
        self._planes.close()

    # -- adding ----------------------------------------------------------------------------
    def add(self, window: Window, values: np.ndarray | Iterable[float]) -> None:
        """Splat ``values`` over ``window``: shape (C,) — one value per channel for the whole
        window — or (C, h, w), a small map resampled (bilinear, pixel-centre aligned) onto the window.
        """
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 1:
            array = array.reshape(-1, 1, 1)
        if array.ndim != 3 or array.shape[0] != self.channels or 0 in array.shape:
            raise ValueError(
                f"values must have shape ({self.channels},) or ({self.channels}, h, w), got {np.shape(values)}"
            )
        if not np.isfinite(array).all():
            raise ValueError("values contain NaN or infinity")
        (row0, row1), (col0, col1) = whole_pixels(window)
        if row1 <= row0 or col1 <= col0:
            raise ValueError(f"empty window {window}")
        f, kind, sigma = self.decimation, self.weight, self._sigma
        rows = _axis_splat(row0, row1, self.grid.height, array.shape[1], kind, sigma, f)
        cols = _axis_splat(col0, col1, self.grid.width, array.shape[2], kind, sigma, f)
        if rows is None or cols is None:
            raise ValueError(f"window {window} lies outside the {self.grid.width}x{self.grid.height} grid")
        contrib = np.empty((self.channels + 1, rows.matrix.shape[0], cols.matrix.shape[0]))
        np.matmul(np.matmul(rows.matrix, array), cols.matrix.T, out=contrib[:-1])
        np.outer(rows.matrix.sum(axis=1), cols.matrix.sum(axis=1), out=contrib[-1])
        self._planes.add(rows.out_start, cols.out_start, contrib)

    # -- reading ---------------------------------------------------------------------------
    def block_windows(self, block_size: int | None = None) -> Iterator[Window]:
        """The output grid cut into blocks (``block_size``, default the accumulator's), row-major."""
        size = self.block_size if block_size is None else block_size
        return block_windows(self.output_grid.height, self.output_grid.width, size)

    def read(self, window: Window, channels: Sequence[int] | None = None) -> WeightedBlock:
        """Mean of ``channels`` (default all) and summed weight over ``window`` of the output grid."""
        (row, row_stop), (col, col_stop) = whole_pixels(window)
        if row < 0 or col < 0 or row_stop > self.output_grid.height or col_stop > self.output_grid.width:
            raise ValueError(
                f"window {window} is not inside the {self.output_grid.width}x{self.output_grid.height} output grid"
            )
        planes = self._planes.read(row, col, row_stop - row, col_stop - col)
        weight = planes[-1]
        sums = planes[:-1] if channels is None else planes[list(channels)]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(weight > 0, sums / weight, np.nan).astype(np.float32)
        return WeightedBlock(window, mean, weight.astype(np.float32))

    def weighted_blocks(
        self, channels: Sequence[int] | None = None, block_size: int | None = None
    ) -> Iterator[WeightedBlock]:
        """:meth:`read` block by block in row-major tiling order (memory: one block)."""
        for window in self.block_windows(block_size):
            yield self.read(window, channels)

    def iter_blocks(
        self, fill: float = np.nan, channels: Sequence[int] | None = None, block_size: int | None = None
    ) -> Iterator[Block]:
        """The mean block by block (:class:`Block`: output-grid window, (C, h, w) float32, ``fill``
        where no window has weight), row-major tiling order; ``channels`` picks some channels."""
        for window, mean, _ in self.weighted_blocks(channels, block_size):
            if not np.isnan(fill):
                mean[np.isnan(mean)] = fill  # the values are finite, so NaN = no weight
            yield Block(window, mean)

    def mean(self, fill: float = np.nan) -> np.ndarray:
        """The whole weighted mean, (C, H', W') float32 (small grids and tests; jobs read blocks)."""
        out = np.empty((self.channels, self.output_grid.height, self.output_grid.width), np.float32)
        for window, data in self.iter_blocks(fill):
            out[:, window.toslices()[0], window.toslices()[1]] = data
        return out

    def weight_coverage(self) -> np.ndarray:
        """The whole summed splat weight, (H', W') float32 (0 = untouched = nodata; small grids)."""
        out = np.empty((self.output_grid.height, self.output_grid.width), np.float32)
        for block in self.weighted_blocks(channels=()):
            out[block.window.toslices()] = block.weight
        return out

    def valid_mask(self) -> np.ndarray:
        """(H', W') bool: True where some window has weight (small grids)."""
        return self.weight_coverage() > 0


# ---------------------------------------------------------------------------- exact SeLo mean


def selo_mean(
    windows: Iterable[Window],
    scores: np.ndarray | Iterable[float],
    height: int,
    width: int,
    decimation: int = 1,
    fill: float = np.nan,
) -> np.ndarray:
    """Exact SeLo mean as one array: per pixel, the plain mean of the scores of all windows covering it.

    Equal to ``heat[r0:r1, c0:c1] += s; count[r0:r1, c0:c1] += 1; heat / count`` (selo.md §1.3), computed
    on the compressed grid of window edges (:class:`tile_tools.selo_map.SeloMap`, whose ``iter_blocks``
    streams the same values). ``scores`` is (N,) or (N, C); the result is (H, W) or (C, H, W) float32
    (with ``decimation`` > 1: the area mean of the covered pixels of each ``decimation`` ×
    ``decimation`` cell). Pixels no window covers are ``fill``.
    """
    from tile_tools.selo_map import SeloMap

    values = np.asarray(scores, dtype=np.float64)
    selo = SeloMap.from_windows(windows, values, height, width)
    out_h, out_w = math.ceil(height / decimation), math.ceil(width / decimation)
    result = np.empty((selo.channels, out_h, out_w), np.float32)
    for window, data in selo.iter_blocks(decimation=decimation, fill=fill):
        result[(slice(None), *window.toslices())] = data
    return result[0] if values.ndim == 1 else result
