"""Post-processing of stitched heatmaps, block by block with a halo (same result as on the whole array).

- :func:`minmax_normalize`: scene-wide min–max to [0, 1] (a constant map becomes all 0), through
  :class:`tile_tools.block_stats.ChannelStats`.
- :func:`median_filter`: square median on uint8 with a replicated border through OpenCV's ``medianBlur``
  (SeLo's own function), block by block with a ``size // 2`` halo; identical to ``medianBlur`` on the
  whole array. Without OpenCV a numpy path (threshold decomposition, same output, 60–150× slower) is
  used, with a warning.
- :func:`gaussian_smooth`: ``scipy.ndimage.gaussian_filter`` with a replicated border.
- :func:`selo_postprocess`: the SeLo chain (selo.md §1.4) on arrays: normalise, ``uint8(255·p)``
  (truncation), median 251, ``g / 255``. :func:`selo_postprocess_blocks` is the same chain on a stream
  of blocks, its only O(scene) state the uint8 map in a temporary file (:class:`~tile_tools.disk_raster.DiskRaster`);
  with ``jpeg_quality`` it adds the exact mode's JPEG round trip of ``g``, block-wise: baseline greyscale
  JPEG codes independent 8 × 8 blocks, so blocks aligned to multiples of 8 give the whole image's
  round trip exactly (and work past JPEG's 65 535-pixel limit).

The array functions take (H, W) or (C, H, W) arrays (channels processed independently); inputs may be
``np.memmap`` s and ``out=`` a memmap, so only one block plus its halo is in memory at a time.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, Protocol

import numpy as np
from PIL import Image
from rasterio.windows import Window
from scipy import ndimage

from tile_tools.block_stats import ChannelStats
from tile_tools.blocks import Block, array_blocks, block_windows, whole_pixels
from tile_tools.disk_raster import DiskRaster

#: SeLo's median kernel (pixels of the full-resolution scene).
SELO_MEDIAN_SIZE = 251
#: The exact mode's JPEG quality (the reference writes ``g`` with OpenCV's default, 95).
SELO_JPEG_QUALITY = 95
#: Default block side of the median: large blocks keep the halo's share of the work small.
MEDIAN_BLOCK = 2048
MedianBackend = Literal["auto", "opencv", "numpy"]


class _Bands(Protocol):
    shape: tuple[int, ...]

    def __getitem__(self, index: tuple[int, slice, slice]) -> np.ndarray: ...


def _as_channels(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return array
    raise ValueError(f"expected an (H, W) or (C, H, W) array, got shape {array.shape}")


def _filter_window(
    src: _Bands, channel: int, window: Window, halo: int, filter_padded: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``filter_padded`` on ``window`` of band ``channel`` of ``src`` (C, H, W) with a ``halo``: the halo
    comes from the neighbouring data; only at the raster's own border is it replicated, which is
    exactly what a replicated-border filter over the whole raster sees. Returns (h, w)."""
    _, height, width = src.shape
    (row, r1), (col, c1) = whole_pixels(window)
    ra, rb = max(row - halo, 0), min(r1 + halo, height)
    ca, cb = max(col - halo, 0), min(c1 + halo, width)
    piece = np.asarray(src[channel, slice(ra, rb), slice(ca, cb)])
    pads = ((halo - (row - ra), halo - (rb - r1)), (halo - (col - ca), halo - (cb - c1)))
    padded = np.pad(piece, pads, mode="edge") if halo else piece
    return filter_padded(padded)


def _blockwise(
    array: np.ndarray,
    out: np.ndarray,
    halo: int,
    block_size: int,
    filter_padded: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Apply ``filter_padded`` (edge-padded (h+2·halo, w+2·halo) block → (h, w)) block by block."""
    src, dst = _as_channels(array), _as_channels(out)
    _, height, width = src.shape
    for c in range(src.shape[0]):
        for window in block_windows(height, width, block_size):
            dst[(c, *window.toslices())] = _filter_window(src, c, window, halo, filter_padded)
    return out


def minmax_normalize(
    array: np.ndarray, valid: np.ndarray | None = None, block_size: int = 1024, out: np.ndarray | None = None
) -> np.ndarray:
    """Scale each channel to [0, 1] with its min and max over the valid, finite pixels.

    A constant channel becomes all 0 (not NaN); pixels outside ``valid`` (H, W bool) or not finite
    become NaN, as does a channel without any valid pixel. Returns float32. Two passes over blocks
    (:class:`~tile_tools.block_stats.ChannelStats`, then :meth:`~tile_tools.block_stats.ChannelStats.normalize`).
    """
    src = _as_channels(array)
    if valid is not None and valid.shape != src.shape[1:]:
        raise ValueError(f"valid mask shape {valid.shape} differs from the map's {src.shape[1:]}")
    if out is None:
        out = np.empty(array.shape, np.float32)
    dst = _as_channels(out)
    stats = ChannelStats.from_blocks(array_blocks(src, block_size, valid))
    for window, data in array_blocks(src, block_size, valid):
        dst[(slice(None), *window.toslices())] = stats.normalize(data)
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
    """Exact median of every ``size`` × ``size`` window of a uint8 array ("valid" output), numpy only.

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


def _opencv_median_padded(padded: np.ndarray, size: int) -> np.ndarray:
    import cv2

    halo = size // 2
    filtered = cv2.medianBlur(np.ascontiguousarray(padded), size)
    return filtered[halo : padded.shape[0] - halo, halo : padded.shape[1] - halo]


def _median_padded(backend: MedianBackend, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """The padded-block median of ``backend`` (``"auto"``: OpenCV if installed, else numpy with a warning)."""
    if backend not in ("auto", "opencv", "numpy"):
        raise ValueError(f"median backend must be 'auto', 'opencv' or 'numpy', got {backend!r}")
    if backend != "numpy":
        try:
            import cv2  # noqa: F401
        except ImportError:
            if backend == "opencv":
                raise
            warnings.warn(
                "OpenCV (opencv-python-headless) is not installed: the median filter falls back to "
                "numpy, with the same result but 60-150x slower",
                RuntimeWarning,
                stacklevel=3,
            )
            backend = "numpy"
        else:
            # OpenCV's medianBlur wants kernels <= 5 on uint8 only (true here) and no empty inputs
            return lambda padded: _opencv_median_padded(padded, size)
    return lambda padded: _median_uint8_padded(padded, size)


def _check_median_size(size: int) -> None:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median size must be a positive odd number, got {size}")


def median_filter(
    array: np.ndarray,
    size: int = SELO_MEDIAN_SIZE,
    block_size: int = MEDIAN_BLOCK,
    out: np.ndarray | None = None,
    backend: MedianBackend = "auto",
) -> np.ndarray:
    """Median over ``size`` × ``size`` windows (odd ``size``) of a uint8 (H, W) or (C, H, W) array.

    The border is replicated, as OpenCV's ``medianBlur`` (and ``scipy.ndimage.median_filter(mode="nearest")``)
    does; processed in ``block_size`` blocks with a ``size // 2`` halo, identical to one ``medianBlur``
    call on the whole array. ``backend``: ``"auto"`` (OpenCV, else numpy with a warning), ``"opencv"``,
    ``"numpy"``.
    """
    if array.dtype != np.uint8:
        raise ValueError(f"median_filter works on uint8 maps (SeLo's g = uint8(255·p)), got {array.dtype}")
    _check_median_size(size)
    if out is None:
        out = np.empty(array.shape, np.uint8)
    return _blockwise(array, out, size // 2, block_size, _median_padded(backend, size))


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


def jpeg_round_trip(image: np.ndarray, quality: int = SELO_JPEG_QUALITY) -> np.ndarray:
    """Encode an (H, W) or (H, W, 3) uint8 image as baseline JPEG (Pillow's libjpeg: greyscale, or
    colour with 4:2:0 subsampling) and decode it again."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("L" if image.ndim == 2 else "RGB"))


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
    g = median_filter(g, median_size)
    result = g.astype(np.float32) / np.float32(255.0)
    invalid = ~np.isfinite(heat)
    if valid is not None:
        invalid |= ~valid
    result[invalid] = np.nan
    return result


def _check_jpeg_alignment(window: Window, height: int, width: int) -> None:
    (r0, r1), (c0, c1) = whole_pixels(window)
    if r0 % 8 or c0 % 8 or (r1 % 8 and r1 != height) or (c1 % 8 and c1 != width):
        raise ValueError(
            f"block {window} is not aligned to JPEG's 8 x 8 blocks: the block-wise round trip needs "
            "offsets and (inner) sizes that are multiples of 8"
        )


def selo_postprocess_blocks(
    blocks: Callable[[], Iterable[Block]],
    height: int,
    width: int,
    stats: ChannelStats | None = None,
    median_size: int = SELO_MEDIAN_SIZE,
    jpeg_quality: int | None = None,
    tmpdir: str | None = None,
    backend: MedianBackend = "auto",
) -> Iterator[Block]:
    """:func:`selo_postprocess` on a stream of heat blocks (NaN = invalid) covering ``height`` × ``width``.

    ``blocks()`` must give the same blocks on every call (e.g. ``lambda: selo.iter_blocks()`` or
    ``acc.iter_blocks``); it is called twice (three times without ``stats``, the min–max of the
    valid pixels; for a :class:`~tile_tools.selo_map.SeloMap` without a scene mask pass
    ``selo.channel_stats()``). Yields (C, h, w) float32 ``g / 255`` blocks in the order of ``blocks()``.
    ``jpeg_quality`` (the exact mode: 95) adds the JPEG round trip of ``g`` (invalid pixels as 0, as the
    reference sees them), which needs blocks aligned to multiples of 8. The uint8 map lives in a
    temporary file in ``tmpdir`` while the generator runs.
    """
    _check_median_size(median_size)
    median = _median_padded(backend, median_size)
    if stats is None:
        stats = ChannelStats.from_blocks(blocks())
    with DiskRaster(stats.channels, height, width, "uint8", tmpdir) as g:
        for window, data in blocks():
            g.write(window, to_uint8(stats.normalize(data)))
        for window, data in blocks():
            if jpeg_quality is not None:
                _check_jpeg_alignment(window, height, width)
            invalid = ~np.isfinite(data)
            out = np.empty(data.shape, np.float32)
            for c in range(stats.channels):
                filtered = _filter_window(g, c, window, median_size // 2, median)
                if jpeg_quality is not None:
                    filtered = jpeg_round_trip(np.where(invalid[c], 0, filtered), jpeg_quality)
                out[c] = filtered.astype(np.float32) / np.float32(255.0)
            out[invalid] = np.nan
            yield Block(window, out)
