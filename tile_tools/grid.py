"""Where the chips go: window generators, a chip-grid spec, and the planning of a scene's windows.

Chip count (regular layout, one scale): along an axis of ``L`` pixels, chips of ``s`` pixels with
stride ``t = s − overlap`` give ``n(L) = 1`` if ``L ≤ s`` else ``ceil((L − s) / t) + 1`` chips.
Edge policy ``shift`` moves the last chip back flush to the border (no chip leaves the scene; a
scene smaller than a chip is an error), ``pad`` lets it overhang, the overhang being invalid
(nodata) pixels. A scene of W × H pixels gives ``n(W) · n(H)`` chips per scale, before the AOI
and minimum-valid-fraction filters. Scales add up (equal pixel sizes count once).

SeLo layout: :func:`selo_windows`, the reference loop of the semantic-localization method.

Planning streams: windows are enumerated lazily in blocks of an (n, 4) array, only over the AOI's
bounding window when there is an AOI, then filtered (AOI, valid fraction); the kept ones are held as
a :class:`~tile_tools.window_array.WindowArray` (one preallocated (N, 4) int64 array). A plan beyond
the limits below is refused by :func:`check_plan` from the working grid alone, before any window is
enumerated; :func:`plan_chips` runs it before any pixel is read (each limit is one of its keywords):

- ``max_chips`` (:data:`MAX_CHIPS`): windows of the grid inside the AOI's bounding window, before
  the valid-data filter;
- ``max_chip_size`` (:data:`MAX_CHIP_SIZE`): chip side in working-grid pixels;
- ``max_grid_pixels`` (:data:`tile_tools.reader.MAX_GRID_PIXELS`): working-grid pixels (checked by
  the reader before it builds a resampled grid).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.units import Length, parse_bands, parse_lengths
from tile_tools.window_array import WindowArray

if TYPE_CHECKING:
    from tile_tools.aoi import Aoi
    from tile_tools.reader import SceneReader

log = logging.getLogger(__name__)

EDGE_POLICIES = ("shift", "pad")
LAYOUTS = ("regular", "selo")
SELO_SIZES = (256, 512, 768)
MAX_CHIPS = 2_000_000
MAX_CHIP_SIZE = 8192
BLOCK_WINDOWS = 1 << 16  # windows per enumeration block


def axis_start_array(length: int, size: int, stride: int, edge: str = "shift") -> np.ndarray:
    """Chip start offsets along one axis as an int64 array (see the module docstring for the count)."""
    if size < 1 or stride < 1:
        raise ValueError(f"size and stride must be >= 1, got size={size}, stride={stride}")
    if edge not in EDGE_POLICIES:
        raise ValueError(f"unknown edge policy {edge!r}; choose from {', '.join(EDGE_POLICIES)}")
    if length < size and edge == "shift":
        raise ValueError(f"an axis of {length} px is shorter than a {size} px chip")
    if length <= size:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(math.ceil((length - size) / stride) + 1, dtype=np.int64) * stride
    if edge == "shift":
        starts[-1] = length - size
    return starts


def axis_starts(length: int, size: int, stride: int, edge: str = "shift") -> list[int]:
    """Chip start offsets along one axis (see the module docstring for the count formula)."""
    return axis_start_array(length, size, stride, edge).tolist()


def chip_count(width: int, height: int, size: int, stride: int) -> int:
    """``n(W) · n(H)`` with ``n(L) = 1 if L ≤ size else ceil((L − size) / stride) + 1``."""

    def n(length: int) -> int:
        return 1 if length <= size else math.ceil((length - size) / stride) + 1

    return n(width) * n(height)


def regular_windows(width: int, height: int, size: int, stride: int, edge: str = "shift") -> list[Window]:
    """Square ``size`` windows every ``stride`` pixels, row by row, ``edge`` policy at the borders."""
    rows = axis_starts(height, size, stride, edge)
    cols = axis_starts(width, size, stride, edge)
    return [Window(col, row, size, size) for row in rows for col in cols]


def _selo_axis(length: int, size: int, offset: int) -> np.ndarray:
    """Starts of one SeLo grid along an axis: ``range(offset, L, s)``, the border-crossing one flush."""
    starts = np.arange(offset, length, size, dtype=np.int64)
    return np.where(starts + size < length, starts, length - size)


def selo_windows(width: int, height: int, sizes: Sequence[int] = SELO_SIZES) -> list[Window]:
    """The SeLo v1 windows: per size ``s``, a stride-``s`` grid and the same grid shifted by ``s//2``
    diagonally, the border-crossing window of each axis moved flush to the border, duplicates once.

    Order follows the reference loop (size, shift, column, row). Rule for small scenes (undefined in
    the reference): a size larger than the scene in either axis is skipped; if every size is, the
    single window is the whole scene (``Window(0, 0, width, height)``).
    """
    seen: set[tuple[int, int, int, int]] = set()
    windows: list[Window] = []
    for s in sizes:
        if s > width or s > height:
            continue
        for off in (0, s // 2):
            for c in range(off, width, s):
                c0 = c if c + s < width else width - s
                for r in range(off, height, s):
                    r0 = r if r + s < height else height - s
                    key = (r0, r0 + s, c0, c0 + s)
                    if key not in seen:
                        seen.add(key)
                        windows.append(Window(c0, r0, s, s))
    if not windows:
        windows.append(Window(0, 0, width, height))
    return windows


def metres_per_pixel(grid: PixelGrid, source: object = None) -> float:
    """Ground size of a pixel in metres (geometric mean of x and y); needs a projected CRS."""
    from tile_tools.reader import metres_per_unit

    if grid.crs is None:
        raise InputError(source, "the scene has no CRS; sizes in metres need a georeferenced scene")
    unit = metres_per_unit(grid.crs)
    if unit is None:
        raise InputError(
            source, f"the grid CRS ({grid.crs}) is not in metres; open the scene with metric=True (UTM)"
        )
    res_x, res_y = grid.res
    return math.sqrt(res_x * res_y) * unit


# --- one scale of a layout, restricted to a region ---------------------------------------------------
def _in_region(starts: np.ndarray, size: int, lo: float, hi: float) -> np.ndarray:
    """Starts whose span ``[start, start + size)`` meets ``[lo, hi)``."""
    return starts[(starts < hi) & (starts + size > lo)]


@dataclass(frozen=True)
class _Scale:
    """The windows of one chip size: rows × columns of starts (``selo``: two shifted grids, column-major)."""

    size: int
    rows: np.ndarray
    cols: np.ndarray
    shifted_rows: np.ndarray | None = None  # SeLo's second grid
    shifted_cols: np.ndarray | None = None
    width: int = 0  # window size when it differs from ``size`` (SeLo's whole-scene fallback)
    height: int = 0

    @property
    def count(self) -> int:
        n = len(self.rows) * len(self.cols)
        if self.shifted_rows is not None and self.shifted_cols is not None:
            n += len(self.shifted_rows) * len(self.shifted_cols)
            n -= len(np.intersect1d(self.rows, self.shifted_rows)) * len(
                np.intersect1d(self.cols, self.shifted_cols)
            )
        return n

    def blocks(self, block: int) -> Iterator[np.ndarray]:
        w, h = (self.width or self.size), (self.height or self.size)
        if self.shifted_rows is None:  # regular: row by row
            per = max(1, block // max(1, len(self.cols)))
            for i in range(0, len(self.rows), per):
                rows = self.rows[i : i + per]
                yield _pack(np.tile(self.cols, len(rows)), np.repeat(rows, len(self.cols)), w, h)
            return
        # SeLo: grid 0 then the shifted grid without the windows grid 0 already has, column by column
        yield from _column_major(self.cols, self.rows, w, h, block)
        assert self.shifted_cols is not None
        in_rows0 = np.isin(self.shifted_rows, self.rows)
        in_cols0 = np.isin(self.shifted_cols, self.cols)
        per = max(1, block // max(1, len(self.shifted_rows)))
        for j in range(0, len(self.shifted_cols), per):
            cols = self.shifted_cols[j : j + per]
            dup = in_cols0[j : j + per][:, None] & in_rows0[None, :]
            keep = ~dup.ravel()
            c = np.repeat(cols, len(self.shifted_rows))[keep]
            r = np.tile(self.shifted_rows, len(cols))[keep]
            if len(c):
                yield _pack(c, r, w, h)


def _column_major(cols: np.ndarray, rows: np.ndarray, w: int, h: int, block: int) -> Iterator[np.ndarray]:
    per = max(1, block // max(1, len(rows)))
    for j in range(0, len(cols), per):
        part = cols[j : j + per]
        yield _pack(np.repeat(part, len(rows)), np.tile(rows, len(part)), w, h)


def _pack(cols: np.ndarray, rows: np.ndarray, width: int, height: int) -> np.ndarray:
    out = np.empty((len(cols), 4), dtype=np.int64)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cols, rows, width, height
    return out


@dataclass(frozen=True)
class ChipGridSpec:
    """How to cut a grid: chip ``sizes`` (px or m), ``overlap`` (px, m or fraction), ``edge`` policy,
    ``layout`` (``regular`` or ``selo``; SeLo uses pixel sizes, 256/512/768 by default)."""

    sizes: tuple[Length, ...] = (Length(224, "px"),)
    overlap: Length = field(default_factory=lambda: Length(0.25, "fraction"))
    edge: str = "shift"
    layout: str = "regular"

    def __post_init__(self) -> None:
        if self.edge not in EDGE_POLICIES:
            raise InputError("edge", f"unknown edge policy {self.edge!r}; choose shift or pad")
        if self.layout not in LAYOUTS:
            raise InputError("layout", f"unknown layout {self.layout!r}; choose regular or selo")
        if not self.sizes:
            raise InputError("chip_size", "no chip size")
        for size in self.sizes:
            if size.unit == "fraction" or size.value <= 0:
                raise InputError("chip_size", f"a chip size is pixels (224) or metres (100m), got {size}")

    @classmethod
    def from_options(
        cls,
        chip_size: str | None = None,
        overlap: str | None = "0.25",
        scales: str | None = None,
        edge: str = "shift",
        layout: str = "regular",
        default_size: int = 224,
    ) -> ChipGridSpec:
        """Build from the option strings: ``scales`` (comma list) wins over ``chip_size``/``default_size``."""
        if scales:
            sizes = parse_lengths(scales, "scales")
        elif chip_size:
            sizes = (Length.parse(chip_size, "chip_size"),)
        elif layout == "selo":
            sizes = tuple(Length(s, "px") for s in SELO_SIZES)
        else:
            sizes = (Length(default_size, "px"),)
        return cls(sizes, Length.parse(overlap or "0", "overlap"), edge, layout)

    @property
    def uses_metres(self) -> bool:
        """True when a size or the overlap is in metres (the grid needs a metric CRS)."""
        return self.overlap.is_metric or any(size.is_metric for size in self.sizes)

    def sizes_px(self, grid: PixelGrid, source: object = None) -> tuple[int, ...]:
        """Chip sizes in pixels of ``grid`` (metres converted with its resolution), each once."""
        mpp = metres_per_pixel(grid, source) if self.uses_metres else None
        return tuple(dict.fromkeys(max(1, round(size.to_pixels(mpp))) for size in self.sizes))

    def stride_px(self, size_px: int, grid: PixelGrid, source: object = None) -> int:
        """Stride in pixels for chips of ``size_px``: size − overlap (at least 1 pixel)."""
        mpp = metres_per_pixel(grid, source) if self.overlap.is_metric else None
        stride = size_px - round(self.overlap.to_pixels(mpp, size_px))
        if stride < 1:
            raise InputError(
                "overlap",
                f"an overlap of {self.overlap.describe()} leaves no step between {size_px} px chips "
                "(give less than 100% or fewer pixels than the chip)",
            )
        return stride

    def _scales(self, grid: PixelGrid, source: object, region: Window | None) -> list[_Scale]:
        lo_c, hi_c, lo_r, hi_r = _region_bounds(grid, region)
        sizes = self.sizes_px(grid, source)
        if self.layout == "selo":
            scales = []
            for s in sizes:
                if s > grid.width or s > grid.height:
                    continue
                axes = [
                    _selo_axis(length, s, off) for off in (0, s // 2) for length in (grid.height, grid.width)
                ]
                rows0, cols0, rows1, cols1 = (
                    _in_region(a, s, lo, hi)
                    for a, (lo, hi) in zip(axes, [(lo_r, hi_r), (lo_c, hi_c)] * 2, strict=True)
                )
                scales.append(_Scale(s, rows0, cols0, rows1, cols1))
            if not scales:  # every size larger than the scene: one window, the whole scene
                one = np.zeros(1, np.int64)
                scales.append(
                    _Scale(max(grid.width, grid.height), one, one, width=grid.width, height=grid.height)
                )
            return scales
        fitting = [s for s in sizes if self.edge == "pad" or (s <= grid.width and s <= grid.height)]
        if not fitting:
            raise InputError(
                source,
                f"the scene ({grid.width}×{grid.height} px) is smaller than a {min(sizes)} px chip; "
                f"use chips of at most {min(grid.width, grid.height)} px or edge='pad'",
            )
        scales = []
        for size in sizes:
            if size not in fitting:
                log.warning("%s: scale %d px is larger than the scene; skipped", source, size)
                continue
            stride = self.stride_px(size, grid, source)
            rows = _in_region(axis_start_array(grid.height, size, stride, self.edge), size, lo_r, hi_r)
            cols = _in_region(axis_start_array(grid.width, size, stride, self.edge), size, lo_c, hi_c)
            scales.append(_Scale(size, rows, cols))
        return scales

    def iter_blocks(
        self, grid: PixelGrid, source: object = None, region: Window | None = None, block: int = BLOCK_WINDOWS
    ) -> Iterator[np.ndarray]:
        """The windows over ``grid`` (only those meeting ``region``, a pixel window) as (n, 4) int64 arrays
        of at most about ``block`` rows, lazily, in order (scale, then row by row; SeLo: its loop order)."""
        for scale in self._scales(grid, source, region):
            yield from scale.blocks(block)

    def windows(self, grid: PixelGrid, source: object = None, region: Window | None = None) -> WindowArray:
        """Every window of every scale over ``grid`` (scales too large for a shift-edge grid are skipped)."""
        return WindowArray.concat(self.iter_blocks(grid, source, region))

    def count(self, grid: PixelGrid, source: object = None, region: Window | None = None) -> int:
        """Number of windows before filtering (the documented formula), without enumerating them."""
        return sum(scale.count for scale in self._scales(grid, source, region))

    def check_limits(
        self, grid: PixelGrid, source: object = None, max_chip_size: int = MAX_CHIP_SIZE
    ) -> tuple[int, ...]:
        """The chip sizes in pixels, or an :class:`InputError` (``max_chip_size``) for a side above the limit."""
        sizes = self.sizes_px(grid, source)
        if max(sizes) > max_chip_size:
            raise InputError(
                "max_chip_size",
                f"{source}: a chip of {max(sizes)} px per side is above the limit of {max_chip_size} px "
                "(a chip is read whole into memory); use smaller chips or raise max_chip_size",
            )
        return sizes


def _region_bounds(grid: PixelGrid, region: Window | None) -> tuple[float, float, float, float]:
    if region is None:
        return -math.inf, math.inf, -math.inf, math.inf
    return (
        float(region.col_off),
        float(region.col_off + region.width),
        float(region.row_off),
        float(region.row_off + region.height),
    )


def _xyz_spec(reader: SceneReader) -> ChipGridSpec:
    """XYZ tiles as a grid spec: one ``tile_size`` window per tile (the working grid is whole tiles)."""
    return ChipGridSpec((Length(reader.tile_size, "px"),), Length(0, "px"), "shift", "regular")


def check_plan(
    reader: SceneReader,
    spec: ChipGridSpec | None,
    aoi: Aoi | Any = None,
    *,
    max_chips: int = MAX_CHIPS,
    max_chip_size: int = MAX_CHIP_SIZE,
) -> tuple[ChipGridSpec, Window | None]:
    """Refuse a plan beyond the limits from ``reader``'s working grid alone (no pixel is read, no window
    enumerated): chips over ``max_chip_size`` px, more than ``max_chips`` windows inside the AOI's bounding
    window, an AOI outside the scene. Returns the spec in use (an XYZ reader's tiles) and the AOI's region."""
    from tile_tools.aoi import aoi_region

    if reader.xyz_origin is not None:
        spec = _xyz_spec(reader)
    elif spec is None:
        raise ValueError("a ChipGridSpec is needed for a non-XYZ reader")
    grid, source = reader.grid, reader.path
    spec.check_limits(grid, source, max_chip_size)
    region = aoi_region(grid, aoi, getattr(aoi, "source", "aoi")) if aoi is not None else None
    count = spec.count(grid, source, region)
    if count > max_chips:
        where = " inside the AOI's bounding box" if aoi is not None else ""
        raise InputError(
            "max_chips",
            f"{source}: the plan has {count:,} chips{where} ({grid.width:,}×{grid.height:,} px, chips of "
            f"{', '.join(str(s) for s in spec.sizes_px(grid, source))} px), above the limit of {max_chips:,}; "
            "use larger chips, less overlap, an aoi, a coarser gsd, or raise max_chips",
        )
    return spec, region


def plan_windows(
    reader: SceneReader,
    spec: ChipGridSpec | None,
    aoi: Aoi | Any = None,
    min_valid: float = 0.5,
    *,
    max_chips: int = MAX_CHIPS,
    max_chip_size: int = MAX_CHIP_SIZE,
) -> WindowArray:
    """The windows of ``reader``'s working grid to read: the spec's windows (or the XYZ tiles of an XYZ
    reader), those meeting the AOI (a :class:`tile_tools.aoi.Aoi` or shapely geometry in the working CRS),
    and with at least ``min_valid`` valid pixels (``reader.valid_fractions``).

    Streams: :func:`check_plan` first (limits), then only the AOI's bounding window is enumerated, block by
    block, into one preallocated (N, 4) array. An AOI outside the scene or no window left is an
    :class:`InputError`.
    """
    from tile_tools.aoi import aoi_hits

    if not 0.0 <= min_valid <= 1.0:
        raise InputError("min_valid", f"must be between 0 and 1, got {min_valid}")
    spec, region = check_plan(reader, spec, aoi, max_chips=max_chips, max_chip_size=max_chip_size)
    grid, source = reader.grid, reader.path
    kept = np.empty((spec.count(grid, source, region), 4), dtype=np.int64)  # the upper bound, filled in place
    n = 0
    for block in spec.iter_blocks(grid, source, region):
        if aoi is not None:
            block = block[aoi_hits(block, grid, aoi)]
        if len(block):
            block = block[reader.valid_fractions(block) >= min_valid - 1e-12]
        if n + len(block) > len(kept):  # never with an exact count; kept safe all the same
            kept = np.concatenate([kept[:n], np.empty((n + len(block) - len(kept), 4), np.int64)])
        kept[n : n + len(block)] = block
        n += len(block)
    if not n:
        where = " inside the AOI" if aoi is not None else ""
        raise InputError(reader.path, f"no chip has at least {min_valid:.0%} valid pixels{where}")
    # a prefix of most of the buffer is kept as it is; a small one is copied so the buffer can go
    return WindowArray.adopt(kept[:n] if 2 * n >= len(kept) else kept[:n].copy())


@dataclass(frozen=True, eq=False)
class ChipPlan:
    """An open reader, the grid spec and the windows to read, each once (close with ``plan.reader.close()``
    or use the plan as a context manager)."""

    reader: SceneReader
    spec: ChipGridSpec | None
    windows: WindowArray

    def __enter__(self) -> ChipPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()


def plan_chips(
    scene: str | os.PathLike[str],
    *,
    chip_size: str | None = None,
    overlap: str | None = "0.25",
    scales: str | None = None,
    gsd: float | None = None,
    bands: str | Iterable[int] | None = None,
    aoi: str | None = None,
    min_valid: float = 0.5,
    stretch: str = "auto",
    edge: str = "shift",
    xyz_zoom: int | None = None,
    layout: str = "regular",
    default_size: int = 224,
    read_raw: bool = False,
    max_chips: int = MAX_CHIPS,
    max_chip_size: int = MAX_CHIP_SIZE,
    max_grid_pixels: int | None = None,
    **_: Any,
) -> ChipPlan:
    """Open ``scene`` and plan its windows from the ``chip_options`` values (one call for every job).

    With ``xyz_zoom`` the chips are the scene's XYZ tiles, ``chip_size`` (pixels) their size (256).
    Limits (``max_*``, see the module docstring) and the AOI are checked before any pixel is read (the
    reader's ``before_reading`` hook); errors name the keyword (``chip_size``, ``overlap``, ``max_chips``, …).
    """
    from tile_tools.aoi import load_aoi
    from tile_tools.reader import MAX_GRID_PIXELS, SceneReader
    from tile_tools.xyz import check_zoom

    band_tuple = parse_bands(bands) if isinstance(bands, str) or bands is None else tuple(bands)
    spec = None
    tile_size = 256
    if xyz_zoom is not None:
        check_zoom(xyz_zoom)
        if chip_size:
            size = Length.parse(chip_size, "chip_size")
            if size.unit != "px":
                raise InputError("chip_size", "XYZ tiles take a size in pixels")
            tile_size = round(size.value)
    else:
        spec = ChipGridSpec.from_options(chip_size, overlap, scales, edge, layout, default_size)
    area: Aoi | None = None

    def before_reading(opened: SceneReader) -> None:  # limits and AOI before any pixel is read
        nonlocal area
        area = load_aoi(aoi, opened.source_grid.crs, opened.grid.crs) if aoi else None
        check_plan(opened, spec, area, max_chips=max_chips, max_chip_size=max_chip_size)

    reader = SceneReader(
        scene,
        bands=band_tuple,
        stretch=stretch,
        gsd=gsd,
        read_raw=read_raw,
        metric=bool(spec and spec.uses_metres),
        xyz_zoom=xyz_zoom,
        tile_size=tile_size,
        max_grid_pixels=MAX_GRID_PIXELS if max_grid_pixels is None else max_grid_pixels,
        before_reading=before_reading,
    )
    try:
        windows = plan_windows(
            reader, spec, area, min_valid, max_chips=max_chips, max_chip_size=max_chip_size
        )
    except Exception:
        reader.close()
        raise
    return ChipPlan(reader, spec, windows)
