"""Scene-wide statistics from blocks: equal to numpy on the whole array; class areas against pyproj."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from tile_tools.block_stats import ChannelStats, blocks_percentile, normalized_blocks
from tile_tools.blocks import Block, array_blocks, block_windows
from tile_tools.class_blocks import ClassAreas, label_block
from tile_tools.pixel_grid import PixelGrid


def heat_stack(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    data = rng.normal(size=(3, 45, 61)).astype(np.float32)
    data[1] = 0.25  # a constant channel
    data[0, :5, :7] = np.nan
    valid = np.ones((45, 61), bool)
    valid[-3:] = False
    return data, valid


def test_channel_stats_of_blocks_equal_numpy_on_the_whole_array() -> None:
    data, valid = heat_stack(np.random.default_rng(0))
    stats = ChannelStats.from_blocks(array_blocks(data, 16, valid))
    masked = np.where(valid, data, np.nan).astype(np.float64)
    np.testing.assert_array_equal(stats.min, np.nanmin(masked, axis=(1, 2)))
    np.testing.assert_array_equal(stats.max, np.nanmax(masked, axis=(1, 2)))
    np.testing.assert_array_equal(stats.count, np.isfinite(masked).sum(axis=(1, 2)))
    np.testing.assert_allclose(stats.sum, np.nansum(masked, axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(stats.mean, np.nanmean(masked, axis=(1, 2)), rtol=1e-12)


def test_normalized_blocks_equal_whole_array_minmax_exactly() -> None:
    data, valid = heat_stack(np.random.default_rng(1))
    stats = ChannelStats.from_blocks(array_blocks(data, 16, valid))
    out = np.empty(data.shape, np.float32)
    for window, block in normalized_blocks(array_blocks(data, 16, valid), stats):
        out[(slice(None), *window.toslices())] = block
    # the reference: whole-array min-max over valid finite pixels, constant channel 0, invalid NaN
    masked = np.where(valid, data, np.nan).astype(np.float64)
    lo, hi = np.nanmin(masked, axis=(1, 2)), np.nanmax(masked, axis=(1, 2))
    expected = np.empty_like(out)
    for c in range(3):
        scaled = (masked[c] - lo[c]) / (hi[c] - lo[c]) if hi[c] > lo[c] else np.zeros_like(masked[c])
        expected[c] = np.where(np.isfinite(masked[c]), scaled, np.nan)
    np.testing.assert_array_equal(out, expected)
    assert np.all(out[1][valid] == 0.0)
    empty = ChannelStats.from_blocks([Block(Window(0, 0, 2, 2), np.full((1, 2, 2), np.nan))])
    assert np.isnan(empty.normalize(np.ones((1, 2, 2)))).all()


@pytest.mark.parametrize("percent", [0.0, 3.7, 50.0, 99.9, 100.0])
def test_block_percentile_equals_numpy_percentile(percent: float) -> None:
    rng = np.random.default_rng(int(percent * 10))
    values = np.concatenate([rng.normal(size=5000), np.full(3000, 0.5), [np.nan, np.inf, -0.0, 0.0]])
    rng.shuffle(values)
    chunks = np.array_split(values.astype(np.float32), 7)
    finite = np.concatenate(chunks).astype(np.float64)
    expected = np.percentile(finite[np.isfinite(finite)], percent)
    for limit in (1 << 20, 100, 1):  # collect at once, or more radix passes
        passes = []

        def source(passes: list = passes) -> list[np.ndarray]:
            passes.append(1)
            return chunks

        assert blocks_percentile(source, percent, collect_limit=limit) == expected
        assert len(passes) <= 5
    assert np.isnan(blocks_percentile(lambda: [np.full(4, np.nan)], 50.0))


def test_label_block_is_the_argmax_with_confidence_and_nodata() -> None:
    probs = np.array(
        [[[0.7, 0.2, np.nan], [0.4, 0.5, 0.1]], [[0.3, 0.8, 0.5], [0.6, 0.5, 0.9]]], dtype=np.float32
    )  # (2 classes, 2, 3)
    labels = label_block(Block(Window(0, 0, 3, 2), probs), min_confidence=0.55)
    np.testing.assert_array_equal(labels.classes, [[0, 1, 255], [1, 255, 1]])
    np.testing.assert_allclose(labels.confidence, [[0.7, 0.8, np.nan], [0.6, 0.5, 0.9]], rtol=1e-6)


def test_class_areas_are_true_square_metres_per_row_on_degree_grids() -> None:
    grid = PixelGrid(40, 30, Affine(0.01, 0, 10.0, 0, -0.01, 61.0), CRS.from_epsg(4326))
    classes = np.full(grid.shape, 255, np.uint8)
    classes[:, :25] = 0
    classes[5:20, 25:] = 1
    areas = ClassAreas(grid, 3)
    for window in block_windows(grid.height, grid.width, 7):  # any block layout
        rows, cols = window.toslices()
        areas.add(window, classes[rows, cols])
    # oracle: pyproj's geodesic area of each pixel, summed over the class
    geod = pyproj.Geod(ellps="WGS84")
    pixel_area = np.empty(grid.shape)
    for r in range(grid.height):
        for c in range(grid.width):
            corners = [grid.transform @ p for p in ((c, r), (c + 1, r), (c + 1, r + 1), (c, r + 1))]
            pixel_area[r, c] = abs(geod.polygon_area_perimeter(*zip(*corners, strict=True))[0])
    expected = [pixel_area[classes == k].sum() for k in range(3)]
    np.testing.assert_allclose(areas.areas_m2(), expected, rtol=1e-12)
    assert areas.as_dict(["a", "b", "c"])["c"] == 0.0
    # a rectangle of whole rows: the geodesic polygon through every pixel corner of its edges
    lons = [10.0 + 0.01 * c for c in range(26)]
    ring_lons = lons + [lons[-1]] * 29 + lons[::-1] + [lons[0]] * 29
    ring_lats = [61.0] * 26 + [61.0 - 0.01 * r for r in range(1, 30)] + [60.7] * 26
    ring_lats += [61.0 - 0.01 * r for r in range(29, 0, -1)]
    column_block = abs(geod.polygon_area_perimeter(ring_lons, ring_lats)[0])
    assert areas.areas_m2()[0] == pytest.approx(column_block, rel=1e-9)


def test_class_areas_planar_with_feet_and_without_crs() -> None:
    feet = PixelGrid(10, 10, Affine(3.0, 0, 1_000_000.0, 0, -3.0, 500_000.0), CRS.from_epsg(2272))  # US ft
    areas = ClassAreas(feet, 2)
    areas.add(Window(0, 0, 10, 10), np.eye(10, dtype=np.uint8))
    unit = pyproj.CRS.from_epsg(2272).axis_info[0].unit_conversion_factor
    np.testing.assert_allclose(areas.areas_m2(), [90 * 9 * unit**2, 10 * 9 * unit**2], rtol=1e-12)
    bare = ClassAreas(PixelGrid(4, 4, Affine.identity(), None), 2)
    bare.add(Window(0, 0, 4, 4), np.zeros((4, 4), np.uint8))
    assert bare.areas_m2() is None and bare.as_dict(["a", "b"]) == {"a": None, "b": None}
