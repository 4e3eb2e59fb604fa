"""Stitching accumulators: constant maps without seams, order independence, exact SeLo mean."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from tile_tools.accumulate import WeightedAccumulator, selo_mean
from tile_tools.block_stats import ChannelStats
from tile_tools.blocks import whole_pixels
from tile_tools.pixel_grid import PixelGrid
from tile_tools.selo_map import SeloMap

GRID = PixelGrid(97, 83, Affine(10.0, 0, 500_000.0, 0, -10.0, 5_600_000.0), CRS.from_epsg(32632))


def starts(size: int, chip: int, stride: int) -> list[int]:
    values = list(range(0, size - chip + 1, stride))
    if values[-1] + chip < size:
        values.append(size - chip)
    return values


def chip_windows(grid: PixelGrid, chip: int = 32, stride: int = 24) -> list[Window]:
    windows = [
        Window(col, row, chip, chip)
        for row in starts(grid.height, chip, stride)
        for col in starts(grid.width, chip, stride)
    ]
    # a padded chip overhanging the bottom-right corner, as the "pad" edge policy makes
    windows.append(Window(grid.width - 20, grid.height - 20, chip, chip))
    return windows


def random_windows(rng: np.random.Generator, height: int, width: int, count: int) -> list[Window]:
    out = []
    for _ in range(count):
        h, w = rng.integers(3, 30, size=2)
        row, col = rng.integers(-h + 1, height), rng.integers(-w + 1, width)
        out.append(Window(int(col), int(row), int(w), int(h)))
    return out


def naive_selo(windows: list[Window], scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """selo.md §1.3 literally: heat += score, count += 1 per window, heat / count."""
    heat = np.zeros((scores.shape[1], height, width))
    count = np.zeros((height, width))
    for window, score in zip(windows, scores, strict=True):
        r0, c0 = int(window.row_off), int(window.col_off)
        r1, c1 = r0 + int(window.height), c0 + int(window.width)
        r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, height), min(c1, width)
        for r in range(r0, r1):
            for c in range(c0, c1):
                heat[:, r, c] += score
                count[r, c] += 1
    with np.errstate(invalid="ignore"):
        return heat / count


@pytest.mark.parametrize("weight", ["uniform", "hann", "gaussian"])
@pytest.mark.parametrize("decimation", [1, 3])
def test_constant_score_gives_constant_map_with_valid_border(weight: str, decimation: int) -> None:
    with WeightedAccumulator(GRID, 2, weight=weight, decimation=decimation, block_size=16) as acc:
        for window in chip_windows(GRID):
            acc.add(window, [0.7, -1.5])
        mean = acc.mean()
        valid = acc.valid_mask()
    assert mean.shape == (2, acc.output_grid.height, acc.output_grid.width)
    assert valid.all()  # border rows and columns included
    np.testing.assert_allclose(mean[0], 0.7, rtol=1e-6)
    np.testing.assert_allclose(mean[1], -1.5, rtol=1e-6)


@pytest.mark.parametrize("weight", ["hann", "gaussian"])
def test_per_chip_maps_of_a_ramp_stitch_without_seams(weight: str) -> None:
    ramp = np.add.outer(np.arange(GRID.height) * 0.5, np.arange(GRID.width) * 0.25)
    with WeightedAccumulator(GRID, 1, weight=weight) as acc:
        for window in chip_windows(GRID)[:-1]:
            rows, cols = window.toslices()
            acc.add(window, ramp[None, rows, cols])
        np.testing.assert_allclose(acc.mean()[0], ramp, rtol=1e-9)


def test_small_per_chip_maps_are_resampled_onto_the_window() -> None:
    grid = PixelGrid(8, 4, Affine.identity(), None)
    with WeightedAccumulator(grid, 1) as acc:
        acc.add(Window(0, 0, 8, 4), np.array([[[0.0, 1.0]]]))  # 1×2 map → left half 0, right half 1
        mean = acc.mean()[0]
    assert np.all(mean[:, :2] == 0.0) and np.all(mean[:, 6:] == 1.0)
    assert np.all(np.diff(mean, axis=1) >= 0)


def test_tapering_splats_keep_full_weight_at_the_scene_border() -> None:
    grid = PixelGrid(40, 30, Affine.identity(), None)
    for weight in ("hann", "gaussian"):
        with WeightedAccumulator(grid, 1, weight=weight) as acc:
            acc.add(Window(0, 0, 40, 30), [1.0])  # flush with every border
            np.testing.assert_allclose(acc.weight_coverage(), 1.0)
        with WeightedAccumulator(grid, 1, weight=weight) as acc:
            acc.add(Window(10, 10, 20, 10), [1.0])  # interior: tapers on every side
            coverage = acc.weight_coverage()
            assert coverage[15, 10] < 0.2 * coverage[15, 19]
            assert coverage[0, 0] == 0.0 and not acc.valid_mask()[0, 0]


@pytest.mark.parametrize("weight", ["uniform", "gaussian"])
def test_splatting_is_order_independent_and_disk_equals_memory(weight: str) -> None:
    rng = np.random.default_rng(7)
    grid = PixelGrid(61, 45, Affine.identity(), None)
    windows = random_windows(rng, grid.height, grid.width, 60)
    values = rng.normal(size=(60, 3))
    maps = rng.normal(size=(60, 3, 2, 3))
    results = []
    for order, storage in ((np.arange(60), "memory"), (rng.permutation(60), "disk")):
        acc = WeightedAccumulator(
            grid, 3, weight=weight, decimation=2, storage=storage, block_size=8, cache_mb=0.01
        )
        for i in order:
            acc.add(windows[i], values[i] if i % 2 else maps[i])
        results.append((acc.mean(), acc.weight_coverage()))
        acc.close()
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)


def test_exact_selo_mean_equals_the_naive_per_pixel_loop() -> None:
    rng = np.random.default_rng(3)
    height, width = 37, 53
    windows = random_windows(rng, height, width, 40)
    scores = rng.random((40, 3))
    expected = naive_selo(windows, scores, height, width)
    assert np.isnan(expected).any()  # some pixels uncovered: they must stay nodata
    np.testing.assert_allclose(selo_mean(windows, scores, height, width), expected, rtol=1e-6, equal_nan=True)
    single = selo_mean(windows, scores[:, 0], height, width)
    assert single.shape == (height, width)
    np.testing.assert_allclose(single, expected[0], rtol=1e-6, equal_nan=True)


def test_exact_selo_mean_on_the_selo_layout_and_decimated() -> None:
    height, width, sizes = 70, 90, (16, 32)
    spans = set()
    for s in sizes:  # selo.md §1.1
        for off in (0, s // 2):
            for c in range(off, width, s):
                c0 = c if c + s < width else width - s
                for r in range(off, height, s):
                    r0 = r if r + s < height else height - s
                    spans.add((r0, c0, s))
    windows = [Window(c, r, s, s) for r, c, s in sorted(spans)]
    scores = np.random.default_rng(5).random(len(windows))
    full = naive_selo(windows, scores[:, None], height, width)[0]
    np.testing.assert_allclose(selo_mean(windows, scores, height, width), full, rtol=1e-6)
    # decimated: the mean of each 4 × 4 cell of the exact map
    padded = np.pad(full, ((0, 2), (0, 2)), constant_values=np.nan)
    cells = padded.reshape(18, 4, 23, 4)
    np.testing.assert_allclose(
        selo_mean(windows, scores, height, width, decimation=4), np.nanmean(cells, axis=(1, 3)), rtol=1e-6
    )
    # the uniform accumulator is the same SeLo mean
    with WeightedAccumulator(PixelGrid(width, height, Affine.identity(), None), 1) as acc:
        for window, score in zip(windows, scores, strict=True):
            acc.add(window, [score])
        np.testing.assert_allclose(acc.mean()[0], full, rtol=1e-6)


def test_bad_values_and_windows_are_refused() -> None:
    with WeightedAccumulator(GRID, 2) as acc:
        with pytest.raises(ValueError, match="shape"):
            acc.add(Window(0, 0, 8, 8), [1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="NaN"):
            acc.add(Window(0, 0, 8, 8), [1.0, np.nan])
        with pytest.raises(ValueError, match="outside"):
            acc.add(Window(500, 0, 8, 8), [1.0, 2.0])


# ------------------------------------------------------------------ block-wise reading (issue 11)


def test_whole_pixels_are_rasterio_window_rounding() -> None:
    for window in (Window(-3.4, 2.6, 10.5, 7.5), Window(5, 7, 3, 2), Window(0.95, 1.9, 2.49, 2.51)):
        (r0, r1), (c0, c1) = whole_pixels(window)
        snapped = window.round_offsets().round_lengths()
        assert (r0, c0, r1 - r0, c1 - c0) == (snapped.row_off, snapped.col_off, snapped.height, snapped.width)


def test_weighted_blocks_and_chosen_channels_equal_the_whole_mean() -> None:
    rng = np.random.default_rng(11)
    windows = random_windows(rng, GRID.height, GRID.width, 50)
    with WeightedAccumulator(GRID, 3, weight="hann", decimation=2, block_size=9, storage="disk") as acc:
        for window in windows:
            acc.add(window, rng.normal(size=3))
        mean, coverage = acc.mean(), acc.weight_coverage()
        for block in acc.weighted_blocks(channels=[2, 0]):
            rows, cols = block.window.toslices()
            np.testing.assert_array_equal(block.mean, mean[[2, 0], rows, cols])
            np.testing.assert_array_equal(block.weight, coverage[rows, cols])
        filled = np.concatenate([b.data.ravel() for b in acc.iter_blocks(fill=-1.0, channels=[1])])
        assert (filled == -1.0).sum() == (coverage == 0).sum() > 0
        with pytest.raises(ValueError, match="inside"):
            acc.read(Window(40, 0, 20, 5))


@pytest.mark.parametrize("decimation", [1, 3, 4])
def test_selo_map_blocks_equal_the_naive_map_on_random_partial_windows(decimation: int) -> None:
    """Issue 19: decimated cells only partly covered are the NaN-mean of the naive map's cells."""
    rng = np.random.default_rng(decimation)
    height, width = 41, 58
    windows = random_windows(rng, height, width, 25)
    scores = rng.random((25, 2))
    naive = naive_selo(windows, scores, height, width)  # (2, H, W), NaN where uncovered
    f = decimation
    out_h, out_w = -(-height // f), -(-width // f)
    padded = np.pad(naive, ((0, 0), (0, out_h * f - height), (0, out_w * f - width)), constant_values=np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells
        expected = np.nanmean(padded.reshape(2, out_h, f, out_w, f), axis=(2, 4))
    partial = np.isnan(padded.reshape(2, out_h, f, out_w, f)).any(axis=(2, 4)) & np.isfinite(expected)
    assert f == 1 or partial.any()  # the layout has partly covered cells
    np.testing.assert_allclose(
        selo_mean(windows, scores, height, width, f), expected, rtol=1e-6, equal_nan=True
    )
    selo = SeloMap.from_windows(windows, scores, height, width)
    stitched = np.full((2, out_h, out_w), -5.0, np.float32)
    for window, data in selo.iter_blocks(decimation=f, block_size=7):
        stitched[(slice(None), *window.toslices())] = data
    np.testing.assert_array_equal(stitched, selo_mean(windows, scores, height, width, f))
    if f == 1:
        stats = selo.channel_stats()
        from_blocks = ChannelStats.from_blocks(selo.iter_blocks(block_size=7))
        np.testing.assert_array_equal(stats.min, from_blocks.min)
        np.testing.assert_array_equal(stats.max, from_blocks.max)
        np.testing.assert_array_equal(stats.count, from_blocks.count)
        np.testing.assert_allclose(stats.sum, from_blocks.sum, rtol=1e-9)
