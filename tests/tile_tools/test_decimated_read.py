"""``SceneReader.read_image_on``: the scene on a decimated grid for previews, from GDAL overviews (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from tile_tools.chip import GridImage
from tile_tools.pixel_grid import PixelGrid
from tile_tools.reader import SceneReader


def gdal_nearest_onto(path, grid: PixelGrid, band_count: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """GDAL's own nearest-neighbour reprojection of the scene (and of its valid mask) onto ``grid``."""
    with rasterio.open(path) as src:
        data = np.zeros((band_count, grid.height, grid.width), np.uint8)
        valid = np.zeros(grid.shape, np.uint8)
        common = dict(dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.nearest)
        for band in range(band_count):
            reproject(rasterio.band(src, band + 1), data[band], **common)
        reproject(src.dataset_mask(), valid, src_transform=src.transform, src_crs=src.crs, **common)
    return data, valid.astype(bool)


@pytest.mark.parametrize("factor", [2, 3, 7])
def test_the_decimated_image_is_gdal_s_nearest_resampling(make_scene, rng, factor):
    data = rng.integers(1, 255, (3, 131, 170), dtype=np.uint8)
    data[:, :20, :30] = 0  # a nodata corner
    path = make_scene(data, nodata=0)
    with SceneReader(path) as reader:
        grid = reader.grid.decimated(factor)
        result = reader.read_image_on(grid)
    assert isinstance(result, GridImage) and result.grid == grid
    assert result.image.shape == (*grid.shape, 3) and result.image.dtype == np.uint8
    expected, valid = gdal_nearest_onto(path, grid)
    # whole cells; the last row/column are partial cells (GDAL leaves those whose centre is off the scene)
    inner = (slice(0, 131 // factor), slice(0, 170 // factor))
    np.testing.assert_array_equal(
        result.image.transpose(2, 0, 1)[(slice(None), *inner)], expected[(slice(None), *inner)]
    )
    np.testing.assert_array_equal(result.mask[inner], valid[inner])
    assert result.mask[-1].any() and result.mask[:, -1].any()  # a partial cell still shows the scene


def test_overviews_are_used_not_the_full_resolution_pixels(tmp_path, make_scene):
    """A checkerboard of 10/200 pixels whose 2× overview is their average, 105: a decimated read that shows
    105 came from the overview (the full-resolution pixels would give 10 or 200)."""
    rows, cols = np.mgrid[0:256, 0:256]
    board = np.where((rows + cols) % 2, 200, 10).astype(np.uint8)
    path = make_scene(np.stack([board] * 3), tiled=True, blockxsize=128, blockysize=128)
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2], Resampling.average)
    with SceneReader(path) as reader:
        image = reader.read_image_on(reader.grid.decimated(2)).image
    assert np.all(image == 105)


def test_a_gsd_grid_is_warped_straight_onto_the_coarse_grid(make_scene, rng):
    data = rng.integers(1, 255, (3, 200, 240), dtype=np.uint8)
    path = make_scene(data, nodata=0)
    with SceneReader(path, gsd=5.0, resampling="nearest") as reader:  # a 400 × 480 working grid
        assert reader.grid.shape == (400, 480)
        grid = reader.grid.decimated(4)  # 10 m: the scene's own pixels
        result = reader.read_image_on(grid)
    expected, valid = gdal_nearest_onto(path, grid)
    np.testing.assert_array_equal(result.mask, valid)
    np.testing.assert_array_equal(result.image.transpose(2, 0, 1), expected)


def test_only_decimated_grids_of_bounded_size(make_scene, rng):
    path = make_scene(rng.integers(1, 255, (3, 100, 100), dtype=np.uint8))
    with SceneReader(path) as reader:
        with pytest.raises(ValueError, match="not a decimated version"):
            reader.read_image_on(PixelGrid(50, 50, reader.grid.transform, reader.grid.crs))
        with pytest.raises(ValueError, match="decimate more"):
            reader.read_image_on(reader.grid.decimated(2), max_pixels=1000)
