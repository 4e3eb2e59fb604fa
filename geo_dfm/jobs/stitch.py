"""The stitch stage: chip scores → maps on an output grid, read back block by block.

Two stitchers with one shape (``add(windows, values)`` per batch, then ``maps(valid)`` — the scene-wide
*score* and *similarity* of every channel, as :class:`MapBlocks` read block by block):

- :class:`BlendStitcher`: the disk-backed weighted accumulator (Hann/Gaussian/uniform splats,
  optional decimation); score = scene-wide min–max of the mean value (or the mean value itself, for
  probabilities, ``normalize=False``).
- :class:`SeloStitcher`: the reference SeLo mean (uniform, exact on the compressed grid of window edges)
  and SeLo's post-processing chain.

Only O(chips) state lives in memory (SeLo keeps the (N, C) scores); maps of output size live in the
accumulator's disk tiles (or are computed per block).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from tile_tools.accumulate import WEIGHT_KINDS, Block
from tile_tools.pixel_grid import PixelGrid

#: Splat weightings a job may ask for, most useful first.
WEIGHTINGS: tuple[str, ...] = ("hann", "gaussian", "uniform")
assert set(WEIGHTINGS) == set(WEIGHT_KINDS)

#: ``valid(window, grid) -> (h, w) bool``: the scene's valid-data mask on a window of an output grid.
ValidMask = Callable[[Window, PixelGrid], np.ndarray]


def auto_decimation(grid: PixelGrid, requested: int | None, max_values: int, channels: int = 1) -> int:
    """``requested``, or the smallest factor keeping output pixels × ``channels`` under ``max_values``."""
    if requested is not None:
        return requested
    values = grid.width * grid.height * channels
    return max(1, math.ceil(math.sqrt(values / max_values)))


@dataclass(frozen=True)
class ChannelRange:
    """Scene-wide minimum and maximum of each channel over valid pixels (NaN: no valid pixel)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of_blocks(cls, blocks: Iterator[Block], channels: int) -> ChannelRange:
        low, high = np.full(channels, np.inf), np.full(channels, -np.inf)
        for _, data in blocks:
            finite = np.isfinite(data)
            with np.errstate(invalid="ignore"):
                low = np.fmin(low, np.where(finite, data, np.inf).reshape(channels, -1).min(axis=1))
                high = np.fmax(high, np.where(finite, data, -np.inf).reshape(channels, -1).max(axis=1))
        empty = ~np.isfinite(low)
        low[empty], high[empty] = np.nan, np.nan
        return cls(low, high)

    def normalize(self, data: np.ndarray) -> np.ndarray:
        """(C, h, w) scaled to [0, 1] per channel (a constant channel becomes 0; NaN stays NaN)."""
        span = (self.high - self.low)[:, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = np.where(span > 0, (data - self.low[:, None, None]) / np.where(span > 0, span, 1), 0.0)
        return np.where(np.isfinite(data), scaled, np.nan).astype(np.float32)


@dataclass(frozen=True)
class MapBlocks:
    """Stitched maps on ``grid``, read block by block: each block is (2C, h, w) float32 — the C scores
    in [0, 1] then the C raw values (mean similarity or probability) — NaN outside valid data."""

    grid: PixelGrid
    channels: int
    read: Callable[[], Iterator[Block]]

    def __iter__(self) -> Iterator[Block]:
        return self.read()


class BlendStitcher:
    """Weighted splats of per-chip values (C,) or small maps (C, h, w) into the disk-backed accumulator."""

    def __init__(
        self,
        grid: PixelGrid,
        channels: int,
        weighting: str = "hann",
        decimation: int = 1,
        normalize: bool = True,
        block_size: int = 512,
    ) -> None:
        from tile_tools.accumulate import WeightedAccumulator

        self.grid, self.channels, self.decimation, self.normalize = grid, channels, decimation, normalize
        self._acc = WeightedAccumulator(
            grid, channels, weight=weighting, decimation=decimation, block_size=block_size
        )
        self.output_grid = self._acc.output_grid

    def __enter__(self) -> BlendStitcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._acc.close()

    def add(self, windows: Sequence[Window], values: np.ndarray) -> None:
        for window, value in zip(windows, values, strict=True):
            self._acc.add(window, value)

    def _masked_blocks(self, valid: ValidMask) -> Iterator[Block]:
        for window, data in self._acc.iter_blocks():
            keep = valid(window, self.output_grid)
            yield Block(window, np.where(keep[None], data, np.nan).astype(np.float32))

    def maps(self, valid: ValidMask) -> MapBlocks:
        """Score (min–max of the mean, or the mean itself) and mean value per block."""
        value_range = (
            ChannelRange.of_blocks(self._masked_blocks(valid), self.channels) if self.normalize else None
        )

        def read() -> Iterator[Block]:
            for window, mean in self._masked_blocks(valid):
                score = value_range.normalize(mean) if value_range is not None else mean
                yield Block(window, np.concatenate([score, mean]))

        return MapBlocks(self.output_grid, self.channels, read)


class SeloStitcher:
    """The SeLo v1 map: uniform mean of window scores, then SeLo's post-processing (docs/selo.md)."""

    def __init__(self, grid: PixelGrid, channels: int, exact: bool = False, block_size: int = 512) -> None:
        self.grid = self.output_grid = grid
        self.channels, self.exact, self.decimation, self.block_size = channels, exact, 1, block_size
        self._windows: list[Window] = []
        self._scores: list[np.ndarray] = []

    def __enter__(self) -> SeloStitcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._scores.clear()

    def add(self, windows: Sequence[Window], values: np.ndarray) -> None:
        self._windows.extend(windows)
        self._scores.append(np.asarray(values, dtype=np.float64).reshape(len(windows), self.channels))

    def maps(self, valid: ValidMask) -> MapBlocks:
        from geo_dfm.jobs.selo import selo_map_round_trip
        from tile_tools.accumulate import selo_mean
        from tile_tools.postprocess import selo_postprocess

        grid = self.grid
        similarity = selo_mean(self._windows, np.concatenate(self._scores), grid.height, grid.width)
        mask = valid(Window(0, 0, grid.width, grid.height), grid) & np.isfinite(similarity).all(axis=0)
        score = np.stack([selo_postprocess(channel, mask) for channel in similarity])
        if self.exact:
            score = np.stack([selo_map_round_trip(channel) for channel in score])
        similarity[:, ~mask] = np.nan
        both = np.concatenate([score, similarity]).astype(np.float32)
        size = self.block_size

        def read() -> Iterator[Block]:
            for row in range(0, grid.height, size):
                for col in range(0, grid.width, size):
                    window = Window(col, row, min(size, grid.width - col), min(size, grid.height - row))
                    rows, cols = window.toslices()
                    yield Block(window, both[:, rows, cols])

        return MapBlocks(grid, self.channels, read)
