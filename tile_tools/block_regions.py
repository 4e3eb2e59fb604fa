"""Connected regions of a class map computed block by block, merged exactly across block seams.

:class:`BlockRegions` takes a class map (non-negative integer = a class, negative = nothing) and a value
map in blocks of row-major tiling order (:class:`~tile_tools.blocks.RowMajorTiling`). Per block it labels
the 4-connected regions of equal class (``scipy.ndimage.label``), polygonizes them in the grid's *pixel*
coordinates (``rasterio.features.shapes``, exact integers) and keeps, per region, its pixel count, value
sum, value max and first pixel. Regions touching an inner block edge are joined with their neighbours
across the seam (union-find over the seam pixels: a pixel and its 4-neighbour on the other side with the
same class); their polygons are unioned exactly (integer coordinates), so a region crossing any number
of seams comes out as the one polygon the whole-array polygonization gives, holes included, with no seam
lines. A region is emitted as soon as it can no longer grow (it does not reach the bottom row of the
current block row), so memory is the open regions, one pixel row of labels and one block.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from tile_tools.blocks import RowMajorTiling


class RegionRecord(NamedTuple):
    """One finished region: ``cls``, ``geometry`` (Polygon in the grid's pixel coordinates, x = column,
    y = row), pixel ``count``, ``sum`` and ``max`` of its values, ``first`` = row · width + column of its
    first pixel in raster order (the whole-array label order)."""

    cls: int
    geometry: BaseGeometry
    count: int
    sum: float
    max: float
    first: int


class _Open:
    """A region that may still grow across a seam."""

    __slots__ = ("cls", "count", "first", "max", "members", "parts", "sum")

    def __init__(self, cls: int, count: int, total: float, top: float, first: int, gid: int) -> None:
        self.cls, self.count, self.sum, self.max, self.first = cls, count, total, top, first
        self.parts: list[BaseGeometry] = []
        self.members = [gid]

    def absorb(self, other: _Open) -> None:
        self.count += other.count
        self.sum += other.sum
        self.max = max(self.max, other.max)
        self.first = min(self.first, other.first)
        self.parts.extend(other.parts)
        self.members.extend(other.members)


def _label(classes: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected regions of equal non-negative class: (labels 1…n, 0 = none, int32), n."""
    labels = np.zeros(classes.shape, np.int32)
    count = 0
    present = classes[classes >= 0]
    for value in np.flatnonzero(np.bincount(present)) if present.size else ():
        part, n = ndimage.label(classes == value)
        inside = part > 0
        labels[inside] = part[inside] + count
        count += n
    return labels, count


class BlockRegions:
    """Regions of equal class over a ``height`` × ``width`` grid fed block by block (see the module).

    ``add(window, classes, values)`` returns the regions finished so far; :meth:`finish` the rest (once
    the blocks covered the grid).
    """

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self._tiling = RowMajorTiling(height, width)
        self._next_id = 1
        self._parent: dict[int, int] = {}
        self._open: dict[int, _Open] = {}  # root id -> region
        self._bottom = np.zeros(width, np.int64)  # region ids of the last pixel row of the block row above
        self._bottom_cls = np.full(width, -1, np.int64)
        self._right = np.zeros(0, np.int64)  # region ids of the last column of the block to the left
        self._right_cls = np.zeros(0, np.int64)

    # -- union-find ----------------------------------------------------------------------------
    def _find(self, gid: int) -> int:
        parent = self._parent
        root = gid
        while parent[root] != root:
            root = parent[root]
        while parent[gid] != root:  # path compression
            parent[gid], gid = root, parent[gid]
        return root

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return
        big, small = (ra, rb) if len(self._open[ra].parts) >= len(self._open[rb].parts) else (rb, ra)
        self._open[big].absorb(self._open.pop(small))
        self._parent[small] = big

    def _join_seam(self, ids_a: np.ndarray, cls_a: np.ndarray, ids_b: np.ndarray, cls_b: np.ndarray) -> None:
        touching = (ids_a > 0) & (ids_b > 0) & (cls_a == cls_b)
        if touching.any():
            for a, b in np.unique(np.stack([ids_a[touching], ids_b[touching]], axis=1), axis=0):
                self._union(int(a), int(b))

    # -- feeding -------------------------------------------------------------------------------
    def add(self, window: Window, classes: np.ndarray, values: np.ndarray) -> list[RegionRecord]:
        """Add one block: ``classes`` (h, w) integers (negative = no region), ``values`` (h, w) float
        (finite where a class is). Returns the regions that are now complete."""
        row, col, h, w, row_done = self._tiling.next(window)
        cls = np.asarray(classes).astype(np.int64, copy=False)
        vals = np.asarray(values, dtype=np.float64)
        if cls.shape != (h, w) or vals.shape != (h, w):
            raise ValueError(f"classes {cls.shape} and values {vals.shape} do not fit window {window}")
        labels, n = _label(cls)
        base = self._next_id - 1
        self._next_id += n
        done: list[RegionRecord] = []
        gids = np.where(labels > 0, labels.astype(np.int64) + base, 0)
        if n:
            done.extend(self._regions_of_block(labels, n, base, cls, vals, row, col))
        if row > 0:
            self._join_seam(self._bottom[col : col + w], self._bottom_cls[col : col + w], gids[0], cls[0])
        if col > 0:
            self._join_seam(self._right, self._right_cls, gids[:, 0], cls[:, 0])
        self._bottom[col : col + w], self._bottom_cls[col : col + w] = gids[-1], cls[-1]
        self._right, self._right_cls = gids[:, -1].copy(), cls[:, -1].copy()
        if row_done:
            done.extend(self._close_row(last=row + h == self.height))
        return done

    def _regions_of_block(
        self, labels: np.ndarray, n: int, base: int, cls: np.ndarray, vals: np.ndarray, row: int, col: int
    ) -> list[RegionRecord]:
        h, w = labels.shape
        flat = labels.ravel()
        inside = np.flatnonzero(flat)
        ids = flat[inside]
        counts = np.bincount(ids, minlength=n + 1)
        sums = np.bincount(ids, weights=vals.ravel()[inside], minlength=n + 1)
        maxima = np.full(n + 1, -np.inf)
        np.maximum.at(maxima, ids, vals.ravel()[inside])
        first_at = np.full(n + 1, h * w, np.int64)  # block-raster position of each region's first pixel
        np.minimum.at(first_at, ids, inside)
        first = (row + first_at // w) * self.width + col + first_at % w  # raster order is kept
        region_cls = np.zeros(n + 1, np.int64)
        region_cls[1:] = cls.ravel()[first_at[1:]]
        index = np.arange(1, n + 1)
        edges = []
        if row > 0:
            edges.append(labels[0])
        if row + h < self.height:
            edges.append(labels[-1])
        if col > 0:
            edges.append(labels[:, 0])
        if col + w < self.width:
            edges.append(labels[:, -1])
        open_ids = set(np.unique(np.concatenate(edges)).tolist()) - {0} if edges else set()
        parts: dict[int, list[BaseGeometry]] = {}
        for geojson, value in rasterio.features.shapes(
            labels, mask=labels > 0, transform=Affine.translation(col, row), connectivity=4
        ):
            parts.setdefault(int(value), []).append(shape(geojson))
        done = []
        for local in index.tolist():
            if local in open_ids:
                gid = local + base
                region = _Open(int(region_cls[local]), int(counts[local]), float(sums[local]),
                               float(maxima[local]), int(first[local]), gid)  # fmt: skip
                region.parts = parts[local]
                self._parent[gid] = gid
                self._open[gid] = region
            else:
                geometry = _merge(parts[local])
                done.append(
                    RegionRecord(
                        int(region_cls[local]),
                        geometry,
                        int(counts[local]),
                        float(sums[local]),
                        float(maxima[local]),
                        int(first[local]),
                    )
                )
        return done

    def _close_row(self, last: bool) -> list[RegionRecord]:
        """Emit the open regions that the next block row cannot reach (all of them after the last row)."""
        reachable = set() if last else {self._find(int(g)) for g in np.unique(self._bottom[self._bottom > 0])}
        done = []
        for root in [r for r in self._open if r not in reachable]:
            region = self._open.pop(root)
            for gid in region.members:
                del self._parent[gid]
            done.append(
                RegionRecord(
                    region.cls, _merge(region.parts), region.count, region.sum, region.max, region.first
                )
            )
        self._right = np.zeros(0, np.int64)
        return done

    def finish(self) -> list[RegionRecord]:
        """The regions still open; the blocks must have covered the whole grid."""
        if not self._tiling.complete:
            raise ValueError(f"the blocks added do not cover the {self.width}x{self.height} grid")
        done = [
            RegionRecord(r.cls, _merge(r.parts), r.count, r.sum, r.max, r.first) for r in self._open.values()
        ]
        self._open.clear()
        self._parent.clear()
        return done


def _merge(parts: list[BaseGeometry]) -> BaseGeometry:
    """One polygon from the pieces of a region (exact: integer pixel coordinates), in a canonical form
    whatever the block layout: collinear vertices (left on former seams) removed, rings normalised
    (``shapely.normalize``), so that later simplification gives the same result."""
    merged = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    return shapely.normalize(shapely.simplify(merged, 0.0))


def pixel_to_crs(geometry: BaseGeometry, transform: Affine) -> BaseGeometry:
    """Pixel coordinates → the grid's CRS with ``transform``, computed as GDAL's polygonizer computes
    them (``c + a·x + b·y``, ``f + d·x + e·y``), so the vertices are bit-identical to
    ``rasterio.features.shapes(..., transform=transform)``."""
    t = transform

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([t.c + t.a * x + t.b * y, t.f + t.d * x + t.e * y])

    return shapely.transform(geometry, apply)
