"""Post-processing: block-wise filters equal whole-array filters (scipy as the reference)."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from scipy import ndimage

from tile_tools.blocks import array_blocks
from tile_tools.postprocess import (
    gaussian_smooth,
    jpeg_round_trip,
    median_filter,
    minmax_normalize,
    selo_postprocess,
    selo_postprocess_blocks,
)


@pytest.mark.parametrize(("shape", "size"), [((23, 31), 3), ((40, 29), 9), ((18, 25), 251)])
def test_median_equals_scipy_nearest_and_blockwise_equals_whole(shape: tuple[int, int], size: int) -> None:
    rng = np.random.default_rng(size)
    image = rng.integers(0, 256, size=shape).astype(np.uint8)
    reference = ndimage.median_filter(image, size=size, mode="nearest")  # = OpenCV medianBlur's border
    whole = median_filter(image, size, block_size=max(shape))
    blockwise = median_filter(image, size, block_size=7)
    np.testing.assert_array_equal(whole, reference)
    np.testing.assert_array_equal(blockwise, whole)


def test_median_of_a_smooth_map_and_channels() -> None:
    y, x = np.mgrid[0:50, 0:60]
    smooth = (120 + 100 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype(np.uint8)
    stack = np.stack([smooth, smooth[::-1]])
    result = median_filter(stack, 15, block_size=16)
    for channel in range(2):
        np.testing.assert_array_equal(
            result[channel], ndimage.median_filter(stack[channel], 15, mode="nearest")
        )


def test_median_refuses_float_and_even_sizes() -> None:
    with pytest.raises(ValueError, match="uint8"):
        median_filter(np.zeros((5, 5)), 3)
    with pytest.raises(ValueError, match="odd"):
        median_filter(np.zeros((5, 5), np.uint8), 4)


def test_gaussian_blockwise_equals_whole_array() -> None:
    data = np.random.default_rng(1).normal(size=(2, 45, 52))
    expected = np.stack([ndimage.gaussian_filter(d, 2.5, mode="nearest") for d in data])
    np.testing.assert_allclose(gaussian_smooth(data, 2.5, block_size=11), expected, rtol=1e-5, atol=1e-6)


def test_minmax_is_scene_wide_and_defined_for_constant_maps() -> None:
    heat = np.array([[1.0, 3.0], [5.0, np.nan]])
    np.testing.assert_allclose(minmax_normalize(heat, block_size=1), [[0.0, 0.5], [1.0, np.nan]])
    valid = np.array([[True, True], [False, True]])
    np.testing.assert_allclose(minmax_normalize(heat, valid), [[0.0, 1.0], [np.nan, np.nan]])
    constant = minmax_normalize(np.full((3, 4), 0.42))
    assert constant.dtype == np.float32 and np.all(constant == 0.0)


def test_selo_postprocess_is_the_reference_chain() -> None:
    y, x = np.mgrid[0:40, 0:48]
    heat = np.sin(x / 6.0) + np.cos(y / 5.0)
    p = (heat - heat.min()) / (heat.max() - heat.min())
    g = (255 * p).astype(np.uint8)  # truncation, as the reference's np.uint8(255 * p)
    expected = ndimage.median_filter(g, 31, mode="nearest").astype(np.float32) / 255
    result = selo_postprocess(heat, median_size=31, block_size=13)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-7)


# ------------------------------------------------------------ OpenCV median and block-wise SeLo (issue 11)


def test_median_blockwise_equals_opencv_on_the_whole_array_and_the_numpy_path() -> None:
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, size=(300, 280)).astype(np.uint8)
    image[100:200] //= 3  # structure, so the median is not flat
    whole = cv2.medianBlur(image, 251)
    for block_size in (64, 97):  # 125-pixel halos reach across several blocks
        np.testing.assert_array_equal(median_filter(image, 251, block_size=block_size), whole)
    np.testing.assert_array_equal(median_filter(image[:90, :80], 31, block_size=16, backend="numpy"),
                                  cv2.medianBlur(image[:90, :80], 31))  # fmt: skip


def test_median_falls_back_to_numpy_with_a_warning_without_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    image = np.random.default_rng(3).integers(0, 256, size=(40, 50)).astype(np.uint8)
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.warns(RuntimeWarning, match="OpenCV"):
        result = median_filter(image, 9, block_size=16)
    np.testing.assert_array_equal(result, ndimage.median_filter(image, 9, mode="nearest"))
    with pytest.raises(ImportError):
        median_filter(image, 9, backend="opencv")


def selo_heat() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.indices((75, 90))
    heat = (np.sin(cols / 7.0) + np.cos(rows / 9.0)).astype(np.float32)
    heat[:, :2] = np.nan  # uncovered columns
    valid = np.ones(heat.shape, bool)
    valid[60:, 70:] = False  # scene nodata
    return heat, valid


@pytest.mark.parametrize("block_size", [16, 24])
def test_selo_chain_on_blocks_equals_the_array_chain(block_size: int) -> None:
    heat, valid = selo_heat()
    expected = selo_postprocess(heat, valid, median_size=31)
    calls = []

    def blocks():
        calls.append(1)
        return array_blocks(heat, block_size, valid)

    out = np.full(heat.shape, -1.0, np.float32)
    for window, data in selo_postprocess_blocks(blocks, *heat.shape, median_size=31):
        out[window.toslices()] = data[0]
    np.testing.assert_array_equal(out, expected)
    assert len(calls) == 3  # statistics, the uint8 map on disk, the filtered blocks


def test_blockwise_jpeg_round_trip_equals_the_whole_image_round_trip() -> None:
    heat, valid = selo_heat()
    p = selo_postprocess(heat, valid, median_size=31)
    # the exact mode's whole-image round trip of g = 255·p (invalid pixels as 0)
    g = np.rint(np.where(np.isfinite(p), p, 0.0) * 255.0).astype(np.uint8)
    whole = jpeg_round_trip(g).astype(np.float32) / np.float32(255.0)
    whole[~np.isfinite(p)] = np.nan
    out = np.empty(heat.shape, np.float32)
    blocks = selo_postprocess_blocks(
        lambda: array_blocks(heat, 16, valid), *heat.shape, median_size=31, jpeg_quality=95
    )
    for window, data in blocks:
        out[window.toslices()] = data[0]
    assert not np.array_equal(np.nan_to_num(whole), np.nan_to_num(p))  # the round trip changes values
    np.testing.assert_array_equal(out, whole)
    with pytest.raises(ValueError, match="multiples of 8"):
        list(
            selo_postprocess_blocks(
                lambda: array_blocks(heat, 12), *heat.shape, median_size=3, jpeg_quality=95
            )
        )
