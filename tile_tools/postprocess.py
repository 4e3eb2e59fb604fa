"""Post-processing of stitched heatmaps, block by block with a halo (same result as on the whole array).

- :func:`minmax_normalize`: scene-wide min–max to [0, 1] (a constant map becomes all 0).
- :func:`median_filter`: square median on uint8 with a replicated border (OpenCV ``medianBlur``
  semantics, equal to ``scipy.ndimage.median_filter(mode="nearest")``), fast for large kernels.
- :func:`gaussian_smooth`: ``scipy.ndimage.gaussian_filter`` with a replicated border.
- :func:`selo_postprocess`: the SeLo chain (selo.md §1.4): normalise, ``uint8(255·p)`` (truncation),
  median 251, ``g / 255``.

Every function takes (H, W) or (C, H, W) arrays (channels processed independently); inputs may be
``np.memmap`` s and ``out=`` a memmap, so only one block plus its halo is in memory at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy import ndimage

#: SeLo's median kernel (pixels of the full-resolution scene).
SELO_MEDIAN_SIZE = 251


def _as_channels(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return array
    raise ValueError(f"expected an (H, W) or (C, H, W) array, got shape {array.shape}")


def _row_bands(height: int, block_size: int) -> Iterator[slice]:
    for row in range(0, height, block_size):
        yield slice(row, min(row + block_size, height))


def _blockwise(
    array: np.ndarray,
    out: np.ndarray,
    halo: int,
    block_size: int,
    filter_padded: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Apply ``filter_padded`` block by block; it maps an edge-padded (h+2·halo, w+2·halo) block to (h, w).

    Halos come from the neighbouring data; only at the array's own border are they replicated, which
    is exactly what a replicated-border filter over the whole array sees.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    src, dst = _as_channels(array), _as_channels(out)
    _, height, width = src.shape
    for c in range(src.shape[0]):
        for row in range(0, height, block_size):
            r1 = min(row + block_size, height)
            ra, rb = max(row - halo, 0), min(r1 + halo, height)
            for col in range(0, width, block_size):
                c1 = min(col + block_size, width)
                ca, cb = max(col - halo, 0), min(c1 + halo, width)
                piece = np.asarray(src[c, ra:rb, ca:cb])
                pads = ((halo - (row - ra), halo - (rb - r1)), (halo - (col - ca), halo - (cb - c1)))
                padded = np.pad(piece, pads, mode="edge") if halo else piece
                dst[c, row:r1, col:c1] = filter_padded(padded)
    return out


def minmax_normalize(
    array: np.ndarray, valid: np.ndarray | None = None, block_size: int = 1024, out: np.ndarray | None = None
) -> np.ndarray:
    """Scale each channel to [0, 1] with its min and max over the valid, finite pixels.

    A constant channel becomes all 0 (not NaN); pixels outside ``valid`` (H, W bool) or not finite
    become NaN, as does a channel without any valid pixel. Returns float32.
    """
    src = _as_channels(array)
    if out is None:
        out = np.empty(array.shape, np.float32)
    dst = _as_channels(out)
    height = src.shape[1]
    if valid is not None and valid.shape != src.shape[1:]:
        raise ValueError(f"valid mask shape {valid.shape} differs from the map's {src.shape[1:]}")
    for c in range(src.shape[0]):
        lo, hi = np.inf, -np.inf
        for rows in _row_bands(height, block_size):
            band = np.asarray(src[c, rows], dtype=np.float64)
            use = np.isfinite(band) if valid is None else np.isfinite(band) & valid[rows]
            if use.any():
                lo, hi = min(lo, band[use].min()), max(hi, band[use].max())
        span = hi - lo
        for rows in _row_bands(height, block_size):
            band = np.asarray(src[c, rows], dtype=np.float64)
            use = np.isfinite(band) if valid is None else np.isfinite(band) & valid[rows]
            scaled = (band - lo) / span if span > 0 else np.zeros_like(band)
            dst[c, rows] = np.where(use, scaled, np.nan)
    return out


def _box_count(mask: np.ndarray, size: int) -> np.ndarray:
    """Number of True pixels in every ``size`` × ``size`` window fully inside ``mask`` ("valid" output)."""
    summed = np.zeros((mask.shape[0] + 1, mask.shape[1]), np.int32)
    np.cumsum(mask, axis=0, dtype=np.int32, out=summed[1:])
    rows = summed[size:] - summed[:-size]
    summed = np.zeros((rows.shape[0], rows.shape[1] + 1), np.int32)
    np.cumsum(rows, axis=1, out=summed[:, 1:])
    return summed[:, size:] - summed[:, :-size]


def _median_uint8_padded(padded: np.ndarray, size: int) -> np.ndarray:
    """Exact median of every ``size`` × ``size`` window of a uint8 array ("valid" output).

    Threshold decomposition: median = #{v : count(x ≤ v) < half}. A first pass on the high nibble
    finds each pixel's 16-level bin, a second pass counts within the bins that occur.
    """
    half = size * size // 2 + 1
    coarse = padded >> 4
    cmin, cmax = int(coarse.min()), int(coarse.max())
    out_shape = (padded.shape[0] - size + 1, padded.shape[1] - size + 1)
    bins = np.full(out_shape, cmin, np.int32)
    for q in range(cmin, cmax):
        bins += _box_count(coarse <= q, size) < half
    median = bins * 16
    vmin, vmax = int(padded.min()), int(padded.max())
    for level in np.unique(bins):
        in_bin = bins == level
        for v in range(16 * int(level), 16 * int(level) + 15):
            if v >= vmax:
                break
            if v < vmin:
                median += in_bin
            else:
                median += in_bin & (_box_count(padded <= v, size) < half)
    return median.astype(np.uint8)


def median_filter(
    array: np.ndarray,
    size: int = SELO_MEDIAN_SIZE,
    block_size: int = 1024,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Median over ``size`` × ``size`` windows (odd ``size``) of a uint8 (H, W) or (C, H, W) array.

    The border is replicated, as OpenCV's ``medianBlur`` and ``scipy.ndimage.median_filter(mode="nearest")``
    do; processed in ``block_size`` blocks with a ``size // 2`` halo.
    """
    if array.dtype != np.uint8:
        raise ValueError(f"median_filter works on uint8 maps (SeLo's g = uint8(255·p)), got {array.dtype}")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median size must be a positive odd number, got {size}")
    if out is None:
        out = np.empty(array.shape, np.uint8)
    return _blockwise(array, out, size // 2, block_size, lambda p: _median_uint8_padded(p, size))


def gaussian_smooth(
    array: np.ndarray,
    sigma: float,
    block_size: int = 1024,
    truncate: float = 4.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gaussian blur (``scipy.ndimage.gaussian_filter``, replicated border) with standard deviation
    ``sigma`` pixels, kernel cut at ``truncate`` sigmas; float32 result, processed block by block."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    halo = int(truncate * sigma + 0.5)
    if out is None:
        out = np.empty(array.shape, np.float32)

    def smooth(padded: np.ndarray) -> np.ndarray:
        blurred = ndimage.gaussian_filter(padded.astype(np.float64), sigma, mode="nearest", truncate=truncate)
        return blurred[halo : blurred.shape[0] - halo, halo : blurred.shape[1] - halo]

    return _blockwise(array, out, halo, block_size, smooth)


def to_uint8(probability: np.ndarray) -> np.ndarray:
    """SeLo's ``g = uint8(255·p)``: truncation toward zero; NaN becomes 0."""
    return (255.0 * np.nan_to_num(np.clip(probability, 0.0, 1.0), nan=0.0)).astype(np.uint8)


def selo_postprocess(
    heat: np.ndarray,
    valid: np.ndarray | None = None,
    median_size: int = SELO_MEDIAN_SIZE,
    block_size: int = 1024,
) -> np.ndarray:
    """SeLo post-processing: min–max normalise, ``g = uint8(255·p)``, median ``median_size`` (replicated
    border), return ``g / 255`` as float32 — the probability map the SeLo metrics use.

    Invalid pixels (outside ``valid`` or not finite) enter the median as 0 and come out as NaN. On a
    decimated heatmap pass ``median_size`` scaled to its pixels (odd).
    """
    g = to_uint8(minmax_normalize(heat, valid, block_size))
    g = median_filter(g, median_size, block_size)
    result = g.astype(np.float32) / np.float32(255.0)
    invalid = ~np.isfinite(heat)
    if valid is not None:
        invalid |= ~valid
    result[invalid] = np.nan
    return result
