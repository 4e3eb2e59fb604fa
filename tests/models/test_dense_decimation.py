"""The default output decimation of chip-level and dense maps (geo_dfm.jobs.stitch), from plain numbers."""

from __future__ import annotations

import math

from affine import Affine

from geo_dfm.jobs.stitch import chip_map_decimation, dense_map_decimation
from tile_tools.pixel_grid import PixelGrid


def _grid(side: int) -> PixelGrid:
    return PixelGrid(side, side, Affine.identity(), None)


def test_chip_maps_get_eight_output_pixels_per_stride():
    grid = _grid(1000)
    assert chip_map_decimation(grid, 48, None, 10**9) == 6  # 64 px chips, 25 % overlap
    assert chip_map_decimation(grid, 168, None, 10**9) == 21  # 224 px chips, 25 % overlap
    assert chip_map_decimation(grid, 4, None, 10**9) == 1  # never below full resolution
    assert chip_map_decimation(grid, 168, 1, 10**9) == 1  # an explicit request wins


def test_dense_maps_get_two_output_pixels_per_patch():
    grid = _grid(1000)
    assert dense_map_decimation(grid, 8.0, None, 10**9) == 4  # 64 px windows of 8 × 8 patches
    assert dense_map_decimation(grid, 4.0, None, 10**9) == 2  # the same windows at 128 px input
    assert dense_map_decimation(grid, 1.5, None, 10**9) == 1
    assert dense_map_decimation(grid, 32.0, 3, 10**9) == 3


def test_huge_outputs_are_decimated_further_to_fit_the_limit():
    grid = _grid(100_000)
    limit = 64_000_000
    for factor in (chip_map_decimation(grid, 48, None, limit), dense_map_decimation(grid, 8.0, None, limit)):
        assert math.ceil(100_000 / factor) ** 2 <= limit * 1.01
        assert factor == math.ceil(math.sqrt(100_000**2 / limit))  # 13, more than the rule's 6 or 4
    channels = 6  # classify: output pixels × classes
    factor = dense_map_decimation(grid, 8.0, None, 256_000_000, channels)
    assert math.ceil(100_000 / factor) ** 2 * channels <= 256_000_000 * 1.01
