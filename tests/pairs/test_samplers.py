"""Random chip windows (tile_tools.samplers): inside the grid, seeded, meeting the AOI, on valid data.

Footprints and valid pixels are checked with rasterio's own window bounds and masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import bounds as window_bounds

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.samplers import random_windows, sample_windows

TRANSFORM = Affine(2.0, 0.0, 500_000.0, 0.0, -2.0, 5_300_000.0)
GRID = PixelGrid(300, 200, TRANSFORM, CRS.from_epsg(32633))


def test_windows_lie_inside_the_grid_with_the_given_sizes_and_repeat_with_the_seed():
    windows = random_windows(GRID, [32, 64, 512], 200, seed=7)
    assert len(windows) == 200
    assert {int(w.width) for w in windows} == {32, 64}  # 512 does not fit the 300 × 200 grid
    assert all(w.width == w.height for w in windows)
    assert all(w.col_off >= 0 and w.row_off >= 0 for w in windows)
    assert all(w.col_off + w.width <= 300 and w.row_off + w.height <= 200 for w in windows)
    assert windows == random_windows(GRID, [32, 64, 512], 200, seed=7)
    assert windows != random_windows(GRID, [32, 64, 512], 200, seed=8)
    offsets = np.array([w.col_off for w in windows if w.width == 32])
    assert offsets.min() < 30 and offsets.max() > 240  # spread over the whole grid
    with pytest.raises(InputError, match="fits"):
        random_windows(GRID, 400, 3)


def test_windows_meet_the_area_of_interest():
    aoi = shapely.box(500_100.0, 5_299_700.0, 500_200.0, 5_299_800.0)  # 50 × 50 px inside the grid
    windows = random_windows(GRID, 16, 40, seed=1, aoi=aoi)
    assert len(windows) == 40
    for window in windows:
        footprint = shapely.box(*window_bounds(window, TRANSFORM))
        assert footprint.intersection(aoi).area > 0


def test_sampled_windows_hold_enough_valid_pixels(tmp_path):
    from tile_tools.reader import open_scene

    path = tmp_path / "half-nodata.tif"
    data = np.full((3, 200, 300), 120, np.uint8)
    data[:, :, :150] = 0  # the left half is nodata
    profile = {"driver": "GTiff", "width": 300, "height": 200, "count": 3, "dtype": "uint8"}
    with rasterio.open(path, "w", **profile, crs=GRID.crs, transform=TRANSFORM, nodata=0) as dst:
        dst.write(data)
    with open_scene(path) as reader:
        windows = sample_windows(reader, 40, 30, seed=2, min_valid=0.9)
    assert len(windows) == 30
    with rasterio.open(path) as src:
        for window in windows:
            valid = src.read_masks(1, window=window) > 0
            assert valid.mean() >= 0.9
