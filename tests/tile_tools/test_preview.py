"""Bounded previews: size, georeferencing (read back with rasterio), NaN-aware area means, OpenCV blending."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from tile_tools.blocks import array_blocks
from tile_tools.colormaps import apply_colormap
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.preview import PreviewGrid, PreviewWriter

OUTPUT = PixelGrid(203, 150, Affine(2.5, 0, 600_000.0, 0, -2.5, 5_300_000.0), CRS.from_epsg(32633))


def smooth_heat() -> np.ndarray:
    rows, cols = np.indices(OUTPUT.shape)
    heat = 0.5 + 0.5 * np.sin(cols / 17.0) * np.cos(rows / 13.0)
    heat[:9, :30] = np.nan  # invalid corner: partly covers preview cells
    heat[100:, 150:] = np.nan
    return heat


def test_preview_grid_is_bounded_and_composed_with_the_scale() -> None:
    preview = PreviewGrid.bounded(OUTPUT, max_size=64)
    assert preview.factor == 4 and max(preview.grid.width, preview.grid.height) <= 64
    assert preview.grid.transform == OUTPUT.transform @ Affine.scale(4)
    big = PixelGrid(100_000, 60_000, Affine(0.3, 0, 0, 0, -0.3, 0), None)
    assert max(PreviewGrid.bounded(big).grid.width, PreviewGrid.bounded(big).grid.height) <= 4096
    with pytest.raises(InputError, match="preview size"):
        PreviewGrid.bounded(big, max_size=None)
    assert PreviewGrid.bounded(OUTPUT, max_size=None).factor == 1


@pytest.mark.parametrize("block_size", [16, 37, 512])
def test_decimated_overlay_is_the_area_mean_blended_like_opencv(tmp_path: Path, block_size: int) -> None:
    heat = smooth_heat()
    preview = PreviewGrid.bounded(OUTPUT, max_size=60)  # factor 4: cells straddle block edges
    f, grid = preview.factor, preview.grid
    background = np.random.default_rng(0).integers(0, 256, (grid.height, grid.width, 3)).astype(np.uint8)
    path = tmp_path / "overlay.png"
    with PreviewWriter(path, preview, background) as writer:
        for window, data in array_blocks(heat, block_size):
            writer.write(window, data[0])
    with rasterio.open(path) as src:
        assert src.crs == OUTPUT.crs
        assert src.transform == OUTPUT.transform @ Affine.scale(f)  # read back by GDAL from the .aux.xml
        assert (src.width, src.height) == (grid.width, grid.height)
        rgba = src.read()
    # oracle: NaN-mean of each f × f cell, colour map, OpenCV's addWeighted
    padded = np.pad(heat, ((0, grid.height * f - 150), (0, grid.width * f - 203)), constant_values=np.nan)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        cells = np.nanmean(padded.reshape(grid.height, f, grid.width, f), axis=(1, 3))
    blended = cv2.addWeighted(background, 0.7, apply_colormap(cells), 0.3, 0.0)
    ok = np.isfinite(cells)
    expected = np.where(ok[..., None], blended, background)
    np.testing.assert_array_equal(rgba[:3].transpose(1, 2, 0), expected)
    np.testing.assert_array_equal(rgba[3], np.where(ok, 255, 0))
    assert not ok[0, 0] and ok[2, 7]  # a cell with some valid pixels is drawn


def test_preview_without_background_and_failures_leave_nothing(tmp_path: Path) -> None:
    heat = smooth_heat()
    preview = PreviewGrid(OUTPUT, 1)
    path = tmp_path / "preview.png"
    with PreviewWriter(path, preview, colormap="viridis") as writer:
        for window, data in array_blocks(heat, 64):
            writer.write(window, data[0])
    with rasterio.open(path) as src:
        rgba = src.read()
    np.testing.assert_array_equal(rgba[:3].transpose(1, 2, 0), apply_colormap(heat, "viridis"))
    np.testing.assert_array_equal(rgba[3], np.where(np.isfinite(heat), 255, 0))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cover"), PreviewWriter(path, preview) as writer:
        writer.write(Window(0, 0, 203, 10), heat[:10])
    with pytest.raises(ValueError, match="row-major"), PreviewWriter(path, preview) as writer:
        writer.write(Window(50, 0, 10, 10), heat[:10, 50:60])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.png", "preview.png.aux.xml"]
