"""MaskOverview (valid fractions, the valid mask per output block) and the ChipSource protocol (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

from tile_tools.blocks import block_windows
from tile_tools.chip import Chip
from tile_tools.grid import ChipGridSpec
from tile_tools.mask_overview import MaskOverview
from tile_tools.pixel_grid import PixelGrid
from tile_tools.prefetch import iter_chip_batches
from tile_tools.reader import SceneReader
from tile_tools.source import ChipSource

UTM = CRS.from_epsg(32632)
GRID = PixelGrid(203, 157, Affine(10, 0, 500000, 0, -10, 5600000), UTM)


def blob_mask(shape: tuple[int, int], seed: int = 3, holes: float = 0.1) -> np.ndarray:
    """An elliptic footprint of valid data with a fraction ``holes`` of random invalid pixels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    mask = (rows - shape[0] / 2) ** 2 / 0.3 + (cols - shape[1] / 2) ** 2 < shape[0] * shape[1] / 1.5
    return mask & (rng.random(shape) >= holes)


def test_valid_fractions_equal_the_mean_of_the_mask_over_each_window():
    mask = blob_mask(GRID.shape)
    overview = MaskOverview(mask, GRID)
    assert overview.exact and overview.any()
    rng = np.random.default_rng(0)
    windows = np.column_stack(
        [
            rng.integers(-40, 200, 300),
            rng.integers(-40, 150, 300),
            rng.integers(1, 80, 300),
            rng.integers(1, 80, 300),
        ]
    )
    padded = np.zeros((GRID.height + 400, GRID.width + 400), bool)  # outside the grid: invalid
    padded[200:-200, 200:-200] = mask
    expected = [padded[200 + r : 200 + r + h, 200 + c : 200 + c + w].mean() for c, r, w, h in windows]
    np.testing.assert_allclose(overview.valid_fractions(windows), expected, atol=1e-12)
    assert overview.valid_fraction(Window(*windows[0])) == pytest.approx(expected[0])


def test_a_coarse_overview_approximates_the_fractions():
    mask = blob_mask((1000, 1600), holes=0.0)  # a 4× overview keeps shapes, not single pixels
    grid = PixelGrid(1600, 1000, GRID.transform, UTM)
    coarse = MaskOverview(mask.reshape(250, 4, 400, 4).mean(axis=(1, 3)) > 0.5, grid)
    assert not coarse.exact and (coarse.row_scale, coarse.col_scale) == (4.0, 4.0)
    windows = ChipGridSpec.from_options("128", "0.5").windows(grid).array
    truth = np.array([mask[r : r + h, c : c + w].mean() for c, r, w, h in windows])
    assert np.abs(coarse.valid_fractions(windows) - truth).max() < 0.01


@pytest.mark.parametrize("factor", [1, 2, 3, 8])
def test_the_mask_of_each_output_block_is_gdal_s_nearest_resampling_of_the_mask(factor):
    mask = blob_mask(GRID.shape)
    overview = MaskOverview(mask, GRID)
    output = GRID.decimated(factor)
    truth = np.zeros(output.shape, np.uint8)
    reproject(
        mask.astype(np.uint8),
        truth,
        src_transform=GRID.transform,
        src_crs=UTM,
        dst_transform=output.transform,
        dst_crs=UTM,
        resampling=Resampling.nearest,
    )
    stitched = np.zeros(output.shape, bool)
    for window in block_windows(output.height, output.width, 16):
        block = overview.sample(output, window)
        assert block.shape == (window.height, window.width)
        stitched[window.toslices()] = block
    np.testing.assert_array_equal(stitched, truth.astype(bool))
    np.testing.assert_array_equal(overview.sample(output), stitched)
    with pytest.raises(ValueError, match="not a decimated version"):
        overview.sample(
            PixelGrid(output.width, output.height, output.transform @ Affine.translation(1, 0), UTM)
        )


def test_the_overview_is_a_value_object_not_a_tuple():
    overview = MaskOverview(blob_mask(GRID.shape), GRID)
    with pytest.raises(TypeError):
        iter(overview)
    with pytest.raises(ValueError, match="2-D bool"):
        MaskOverview(np.ones((3, 3), np.uint8), GRID)


def test_scene_reader_and_a_fake_are_chip_sources(make_scene, rng):
    path = make_scene(rng.integers(1, 255, (3, 64, 64), dtype=np.uint8))
    with SceneReader(path) as reader:
        assert isinstance(reader, ChipSource)
        assert isinstance(reader.valid_mask_overview(), MaskOverview)

    class Ones:
        """A source without any file: every chip is grey and valid."""

        grid = PixelGrid(64, 64, Affine.identity(), None)

        def read_chip(self, window: Window) -> Chip:
            shape = (int(window.height), int(window.width))
            return Chip(
                np.full((*shape, 3), 7, np.uint8), np.ones(shape, bool), window, Affine.identity(), None, 8
            )

        def valid_fraction(self, window: Window) -> float:
            return 1.0

    fake = Ones()
    assert isinstance(fake, ChipSource)
    windows = ChipGridSpec.from_options("8", "0").windows(fake.grid)
    chips = [chip for batch in iter_chip_batches(fake, windows, 5) for chip in batch]
    assert [chip.window for chip in chips] == list(windows)
