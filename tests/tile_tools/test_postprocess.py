"""Post-processing: block-wise filters equal whole-array filters (scipy as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tile_tools.postprocess import gaussian_smooth, median_filter, minmax_normalize, selo_postprocess


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
