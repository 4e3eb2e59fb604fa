"""The stitch stage: chip scores → maps on an output grid, read back block by block.

Two stitchers with one shape (``add(windows, values)`` per batch, then ``maps(valid)`` — the scene-wide
*score* and *raw value* of every channel, as :class:`MapBlocks` read block by block):

- :class:`BlendStitcher`: the disk-backed weighted accumulator (Hann/Gaussian/uniform splats,
  optional decimation) of per-chip values or per-window patch grids; score = scene-wide min–max of the
  mean value (or the mean value itself, for probabilities, ``normalize=False``; or, ``prescored=True``,
  values that already hold the scores, e.g. contrast probabilities, beside the raw values).
- :class:`SeloStitcher`: the reference SeLo mean (uniform, exact on the compressed grid of window edges)
  and SeLo's post-processing chain.

Memory: O(chips) (SeLo keeps the (N, C) scores) plus one block; what has the output's size lives on
disk (the accumulator's tiles, SeLo's uint8 map) or is computed per block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from tile_tools.accumulate import WEIGHT_KINDS
from tile_tools.block_stats import ChannelStats
from tile_tools.blocks import Block
from tile_tools.mask_overview import MaskOverview
from tile_tools.pixel_grid import PixelGrid

#: Splat weightings a job may ask for, most useful first.
WEIGHTINGS: tuple[str, ...] = ("hann", "gaussian", "uniform")
assert set(WEIGHTINGS) == set(WEIGHT_KINDS)

#: SeLo's exact mode writes its crops and its map as JPEG at this quality (the reference's).
SELO_JPEG_QUALITY = 95


def auto_decimation(grid: PixelGrid, requested: int | None, max_values: int, channels: int = 1) -> int:
    """``requested``, or the smallest factor keeping output pixels × ``channels`` under ``max_values``."""
    if requested is not None:
        return requested
    values = grid.width * grid.height * channels
    return max(1, math.ceil(math.sqrt(values / max_values)))


#: A chip-level map (one value per chip, blended with smooth splats) varies on the scale of the chip
#: stride: this many output pixels per stride keep it faithful while writing far fewer pixels than the
#: scene has (``decimate=1`` asks for full resolution).
SAMPLES_PER_STRIDE = 8


def chip_map_decimation(
    grid: PixelGrid, stride: int, requested: int | None, max_values: int, channels: int = 1
) -> int:
    """``requested``, or the default output decimation of a chip-level map: ``stride //
    SAMPLES_PER_STRIDE``, more when needed to keep output pixels × ``channels`` under ``max_values``."""
    if requested is not None:
        return requested
    return max(1, stride // SAMPLES_PER_STRIDE, auto_decimation(grid, None, max_values, channels))


#: A dense map (one value per patch, upsampled bilinearly) varies on the scale of a patch's footprint:
#: this many output pixels per footprint side keep it faithful (``decimate=1`` asks for full resolution).
SAMPLES_PER_PATCH = 2


def dense_map_decimation(
    grid: PixelGrid, patch_px: float, requested: int | None, max_values: int, channels: int = 1
) -> int:
    """``requested``, or the default output decimation of a dense map whose patches cover ``patch_px``
    working-grid pixels a side: ``patch_px // SAMPLES_PER_PATCH``, more when needed to keep output
    pixels × ``channels`` under ``max_values``."""
    if requested is not None:
        return requested
    return max(1, int(patch_px // SAMPLES_PER_PATCH), auto_decimation(grid, None, max_values, channels))


def masked(blocks: Iterator[Block], valid: MaskOverview, grid: PixelGrid) -> Iterator[Block]:
    """``blocks`` of ``grid`` with NaN wherever the scene has no valid data."""
    for window, data in blocks:
        keep = valid.sample(grid, window)
        yield Block(window, np.where(keep[None], data, np.nan).astype(np.float32))


@dataclass(frozen=True)
class MapBlocks:
    """Stitched maps on ``grid``, read block by block (row-major tiling order): each block is (2C, h, w)
    float32 — the C scores in [0, 1] then the C raw values (mean similarity or probability) — NaN
    outside valid data. Iterating reads them again."""

    grid: PixelGrid
    channels: int
    read: Callable[[], Iterator[Block]]

    def __iter__(self) -> Iterator[Block]:
        return self.read()


class BlendStitcher:
    """Weighted splats of per-chip values (C,) or small maps (C, h, w) into the disk-backed accumulator.

    With ``prescored=True`` each value holds 2C channels — C scores in [0, 1], then C raw values (see
    :meth:`geo_dfm.models.contrast.ContrastScores.channels`) — and :meth:`maps` passes both means through.
    """

    def __init__(
        self,
        grid: PixelGrid,
        channels: int,
        weighting: str = "hann",
        decimation: int = 1,
        normalize: bool = True,
        block_size: int = 512,
        prescored: bool = False,
    ) -> None:
        from tile_tools.accumulate import WeightedAccumulator

        self.grid, self.channels, self.decimation, self.normalize = grid, channels, decimation, normalize
        self.block_size, self.prescored = block_size, prescored
        self._acc = WeightedAccumulator(
            grid,
            2 * channels if prescored else channels,
            weight=weighting,
            decimation=decimation,
            block_size=block_size,
        )
        self.output_grid = self._acc.output_grid

    def __enter__(self) -> BlendStitcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._acc.close()

    def add(self, windows: Sequence[Window], values: np.ndarray) -> None:
        for window, value in zip(windows, values, strict=True):
            self._acc.add(window, value)

    def maps(self, valid: MaskOverview) -> MapBlocks:
        """Score (min–max of the mean over valid pixels, or the mean itself) and mean value per block."""
        grid, size = self.output_grid, self.block_size

        def means() -> Iterator[Block]:
            return masked(self._acc.iter_blocks(block_size=size), valid, grid)

        if self.prescored:
            return MapBlocks(grid, self.channels, means)
        stats = ChannelStats.from_blocks(means()) if self.normalize else None

        def read() -> Iterator[Block]:
            for window, mean in means():
                score = stats.normalize(mean) if stats is not None else mean
                yield Block(window, np.concatenate([score, mean]).astype(np.float32))

        return MapBlocks(grid, self.channels, read)


class SeloStitcher:
    """The SeLo v1 map: uniform mean of window scores, then SeLo's post-processing (docs/selo.md)."""

    def __init__(self, grid: PixelGrid, channels: int, exact: bool = False, block_size: int = 2048) -> None:
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

    def maps(self, valid: MaskOverview) -> MapBlocks:
        """SeLo's ``g / 255`` and the mean similarity per block; the uint8 map the 251 median needs lives
        on disk (:func:`tile_tools.postprocess.selo_postprocess_blocks`). Blocks are multiples of 8 (the
        exact mode's JPEG round trip works on 8 × 8 blocks)."""
        from tile_tools.postprocess import selo_postprocess_blocks
        from tile_tools.selo_map import SeloMap

        grid, size = self.grid, self.block_size
        scores = np.concatenate(self._scores) if self._scores else np.zeros((0, self.channels))
        selo = SeloMap.from_windows(self._windows, scores, grid.height, grid.width)

        def similarity() -> Iterator[Block]:
            return masked(selo.iter_blocks(block_size=size), valid, grid)

        stats = ChannelStats.from_blocks(similarity())
        quality = SELO_JPEG_QUALITY if self.exact else None

        def read() -> Iterator[Block]:
            chain = selo_postprocess_blocks(similarity, grid.height, grid.width, stats, jpeg_quality=quality)
            for (window, mean), (_, score) in zip(similarity(), chain, strict=True):
                yield Block(window, np.concatenate([score, mean]).astype(np.float32))

        return MapBlocks(grid, self.channels, read)
