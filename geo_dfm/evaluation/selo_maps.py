"""The pixel work behind the SeLo metrics, done in row slabs so a map of any size fits in memory.

The reference metrics (xiaoyuan1996/SemanticLocalizationMetrics ``evaluations/SLM.py``; definitions in
``docs/evaluation.md``) work on whole images. The same operations run here on row slabs whose halos
cover each filter's reach, which gives the same pixels:

- the region mask: every polygon filled at once with OpenCV ``fillPoly`` (vertices truncated to int32)
  on a canvas spanning the polygons' rows at full width, so lines are clipped exactly as on the whole
  image (a disk-backed scratch array when large);
- attention peaks: ``g = uint8(255·P)``, five normalised 50×50 ``cv2.boxFilter`` passes (reflect-101
  border; a slab needs 5 × 25 rows of halo), then a 1000-px maximum filter (scipy, reflect border;
  500 rows of halo); peaks are the pixels equal to that maximum with ``g > 0``, grouped with
  8-connectivity across slabs and reduced to their centroids (``[x, y]``, truncated).

Memory: one slab (``block_rows`` + 1000 rows × width, uint8) plus the smoothed map and the mask canvas,
which are disk-backed scratch arrays above 64 MiB (:mod:`geo_dfm.evaluation.scratch`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from geo_dfm.evaluation.scratch import scratch_array
from tile_tools.errors import InputError

BOX_SIZE = 50
BOX_PASSES = 5
MAX_FILTER_SIZE = 1000
_BOX_HALO = BOX_PASSES * (BOX_SIZE // 2)
_MAX_HALO = MAX_FILTER_SIZE // 2
#: Pixels per slab (before halos): about 64 MB of float64 per slab.
BLOCK_PIXELS = 8_000_000


class ProbabilityMap(Protocol):
    """A read-only (H, W) probability map in [0, 1], read by rows."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as (rows, W) float64 in [0, 1]."""
        ...

    def value(self, row: int, col: int) -> float:
        """The probability of one pixel."""
        ...


class ArrayMap:
    """A probability map held by the caller: any (H, W) float array (an ``np.memmap`` works)."""

    def __init__(self, array: np.ndarray, source: str = "probability") -> None:
        if array.ndim != 2 or 0 in array.shape:
            raise InputError(source, f"the map must be a non-empty (H, W) array, got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise InputError(source, f"the map must hold floats in [0, 1], got dtype {array.dtype}")
        self._array = array
        self._source = source

    @property
    def shape(self) -> tuple[int, int]:
        return int(self._array.shape[0]), int(self._array.shape[1])

    def rows(self, start: int, stop: int) -> np.ndarray:
        block = np.asarray(self._array[start:stop], dtype=np.float64)
        if not np.isfinite(block).all() or block.min() < 0.0 or block.max() > 1.0:
            bad = block[~np.isfinite(block) | (block < 0) | (block > 1)]
            raise InputError(self._source, f"values must be finite and in [0, 1] (found {bad.flat[0]!r})")
        return block

    def value(self, row: int, col: int) -> float:
        return float(self._array[row, col])


class GreyRasterMap:
    """Band 1 of a raster file as a probability map, scored as an 8-bit grey image.

    uint8 maps give ``grey / 255`` exactly as the reference reads its grey JPEGs; float maps in
    [0, 1] (e.g. a ``localize`` COG) are stored as the grey level ``round(255·p)`` first. Nodata
    pixels count as 0.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import rasterio
        import rasterio.errors

        self.path = Path(path)
        try:
            with warnings.catch_warnings():  # maps of plain images have no georeferencing, by design
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._dataset = rasterio.open(self.path)
        except Exception as exc:
            raise InputError(self.path, f"cannot read the map: {exc}") from exc
        dataset = self._dataset
        if dataset.count not in (1, 2):  # grey, or grey + alpha
            dataset.close()
            raise InputError(self.path, f"a probability map has one grey band, this file has {dataset.count}")
        self._dtype = np.dtype(dataset.dtypes[0])
        if self._dtype != np.uint8 and not np.issubdtype(self._dtype, np.floating):
            dataset.close()
            raise InputError(
                self.path, f"a probability map is 8-bit grey or float in [0, 1], not {self._dtype}"
            )
        self._nodata = dataset.nodata

    def close(self) -> None:
        self._dataset.close()

    def __enter__(self) -> GreyRasterMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def shape(self) -> tuple[int, int]:
        return int(self._dataset.height), int(self._dataset.width)

    def grey_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as (rows, W) uint8 grey levels."""
        from rasterio.windows import Window

        data = self._dataset.read(1, window=Window(0, start, self._dataset.width, stop - start))
        if self._dtype == np.uint8:
            return data
        values = data.astype(np.float64)
        if self._nodata is not None:
            values[data == self._nodata] = 0.0
        if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
            raise InputError(self.path, "a float probability map must hold finite values in [0, 1]")
        return np.rint(values * 255.0).astype(np.uint8)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.grey_rows(start, stop) / 255.0

    def value(self, row: int, col: int) -> float:
        return float(self.grey_rows(row, row + 1)[0, col] / 255.0)


@dataclass(frozen=True)
class MapSums:
    """What Rsu needs: ``total`` = ΣP, ``inside`` = Σ P·M, ``mask_area`` = ΣM, ``pixels`` = H·W;
    ``minimum``/``maximum`` of P (equal for a constant map)."""

    total: float
    inside: float
    mask_area: int
    pixels: int
    minimum: float
    maximum: float

    @property
    def constant(self) -> bool:
        return self.minimum == self.maximum


@dataclass(frozen=True)
class MapAnalysis:
    """The sums of :class:`MapSums` and the attention peak centres ``[x, y]`` (before the P ≥ 0.5 test)."""

    sums: MapSums
    peak_centres: tuple[tuple[int, int], ...]


def int_polygons(regions: Sequence[Sequence[Sequence[float]]]) -> list[np.ndarray]:
    """Polygons as (n, 2) int32 vertex arrays, truncated toward zero as ``np.array(points, np.int32)``."""
    return [
        np.asarray(np.asarray(points, dtype=np.float64), dtype=np.int32).reshape(-1, 2) for points in regions
    ]


class RegionMask:
    """The filled region mask M (``cv2.fillPoly`` of all polygons at once), by rows."""

    def __init__(self, polygons: list[np.ndarray], height: int, width: int) -> None:
        import cv2

        ys = np.concatenate([p[:, 1] for p in polygons]) if polygons else np.zeros(0, np.int32)
        self.top = max(0, int(ys.min())) if ys.size else 0
        bottom = min(height, int(ys.max()) + 1) if ys.size else 0
        self._canvas = scratch_array((max(0, bottom - self.top), width), np.uint8)
        if bottom > self.top:
            shifted = [np.ascontiguousarray(p - np.array([0, self.top], np.int32)) for p in polygons]
            if isinstance(self._canvas, np.memmap):  # cv2 draws into a plain ndarray view of the map
                canvas = np.ndarray(self._canvas.shape, np.uint8, buffer=self._canvas)
            else:
                canvas = self._canvas
            cv2.fillPoly(canvas, shifted, 1)
        self.width = width

    def rows(self, start: int, stop: int) -> np.ndarray:
        """(stop − start, W) uint8 0/1."""
        out = np.zeros((stop - start, self.width), np.uint8)
        lo, hi = max(start, self.top), min(stop, self.top + self._canvas.shape[0])
        if hi > lo:
            out[lo - start : hi - start] = self._canvas[lo - self.top : hi - self.top]
        return out


def block_rows_for(width: int, block_pixels: int = BLOCK_PIXELS) -> int:
    """Rows per slab for a map ``width`` pixels wide."""
    return max(64, block_pixels // max(1, width))


def analyse_map(
    source: ProbabilityMap, polygons: list[np.ndarray], block_rows: int | None = None
) -> MapAnalysis:
    """One pass for the sums and the smoothed grey map, one for the peaks (see the module docstring)."""
    import cv2

    height, width = source.shape
    rows_per_block = block_rows or block_rows_for(width)
    mask = RegionMask(polygons, height, width)
    smooth = scratch_array((height, width), np.uint8)
    total = inside = 0.0
    area = 0
    low, high = np.inf, -np.inf
    for start in range(0, height, rows_per_block):
        stop = min(height, start + rows_per_block)
        top, bottom = max(0, start - _BOX_HALO), min(height, stop + _BOX_HALO)
        slab = source.rows(top, bottom)
        central = slab[start - top : stop - top]
        region = mask.rows(start, stop)
        total += float(np.sum(central))
        inside += float(np.sum(central * region))
        area += int(region.sum(dtype=np.int64))
        low, high = min(low, float(central.min())), max(high, float(central.max()))
        grey = np.asarray(slab * 255.0, dtype=np.uint8)
        for _ in range(BOX_PASSES):
            grey = cv2.boxFilter(grey, -1, (BOX_SIZE, BOX_SIZE))
        smooth[start:stop] = grey[start - top : stop - top]
    sums = MapSums(total, inside, area, height * width, low, high)
    centres = () if sums.constant else _peak_centres(smooth, rows_per_block)
    return MapAnalysis(sums, centres)


def _peak_centres(smooth: np.ndarray, block_rows: int) -> tuple[tuple[int, int], ...]:
    """Centroids ``(x, y)`` of the 8-connected groups of pixels equal to their 1000-px maximum (> 0)."""
    from scipy import ndimage

    height, width = smooth.shape
    components = _Components()
    previous_last: np.ndarray | None = None
    eight = np.ones((3, 3), dtype=bool)
    for start in range(0, height, block_rows):
        stop = min(height, start + block_rows)
        top, bottom = max(0, start - _MAX_HALO), min(height, stop + _MAX_HALO)
        slab = np.ascontiguousarray(smooth[top:bottom])
        maximum = ndimage.maximum_filter(slab, size=MAX_FILTER_SIZE, mode="reflect")
        grey = slab[start - top : stop - top]
        peaks = (maximum[start - top : stop - top] == grey) & (grey > 0)
        labels, count = ndimage.label(peaks, structure=eight)
        base = len(components.parent)
        if count:
            rows, cols = np.nonzero(labels)
            components.add(labels[rows, cols] - 1, rows + start, cols, count)
        first, last = (
            np.where(line > 0, line.astype(np.int64) - 1 + base, -1) for line in (labels[0], labels[-1])
        )
        if previous_last is not None:
            components.join_rows(previous_last, first)
        previous_last = last
    return components.centroids()


class _Components:
    """Connected pixel groups across slabs: pixel count and coordinate sums per label, union-find."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.count: list[int] = []
        self.row_sum: list[int] = []
        self.col_sum: list[int] = []

    def add(self, local: np.ndarray, rows: np.ndarray, cols: np.ndarray, count: int) -> None:
        """Add ``count`` new groups; ``local`` (0 … count−1) labels each pixel at ``rows``/``cols``."""
        base = len(self.parent)
        counts = np.bincount(local, minlength=count)
        row_sums = np.bincount(local, weights=rows.astype(np.float64), minlength=count)
        col_sums = np.bincount(local, weights=cols.astype(np.float64), minlength=count)
        self.parent.extend(range(base, base + count))
        self.count.extend(int(c) for c in counts)
        self.row_sum.extend(int(round(s)) for s in row_sums)  # exact: integer sums below 2**53
        self.col_sum.extend(int(round(s)) for s in col_sums)

    def find(self, label: int) -> int:
        root = label
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[label] != root:
            self.parent[label], label = root, self.parent[label]
        return root

    def join_rows(self, upper: np.ndarray, lower: np.ndarray) -> None:
        """Merge groups touching across a slab boundary (8-connectivity: the same or a diagonal column)."""
        for shift in (-1, 0, 1):
            a = upper[max(0, -shift) : len(upper) - max(0, shift)]
            b = lower[max(0, shift) : len(lower) - max(0, -shift)]
            both = (a >= 0) & (b >= 0)
            for first, second in set(zip(a[both].tolist(), b[both].tolist(), strict=True)):
                root_a, root_b = self.find(first), self.find(second)
                if root_a != root_b:
                    self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def centroids(self) -> tuple[tuple[int, int], ...]:
        totals: dict[int, list[int]] = {}
        for label in range(len(self.parent)):
            entry = totals.setdefault(self.find(label), [0, 0, 0])
            entry[0] += self.count[label]
            entry[1] += self.row_sum[label]
            entry[2] += self.col_sum[label]
        return tuple((col // n, row // n) for n, row, col in totals.values())
