"""Where the chips go: window generators, a chip-grid spec, and the planning of a scene's windows.

Chip count (regular layout, one scale): along an axis of ``L`` pixels, chips of ``s`` pixels with
stride ``t = s − overlap`` give ``n(L) = 1`` if ``L ≤ s`` else ``ceil((L − s) / t) + 1`` chips.
Edge policy ``shift`` moves the last chip back flush to the border (no chip leaves the scene; a
scene smaller than a chip is an error), ``pad`` lets it overhang, the overhang being invalid
(nodata) pixels. A scene of W × H pixels gives ``n(W) · n(H)`` chips per scale, before the AOI
and minimum-valid-fraction filters. Scales add up.

SeLo layout: :func:`selo_windows`, the reference loop of the semantic-localization method.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rasterio.windows import Window

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.units import Length, parse_bands, parse_lengths

log = logging.getLogger(__name__)

EDGE_POLICIES = ("shift", "pad")
LAYOUTS = ("regular", "selo")
SELO_SIZES = (256, 512, 768)


def axis_starts(length: int, size: int, stride: int, edge: str = "shift") -> list[int]:
    """Chip start offsets along one axis (see the module docstring for the count formula)."""
    if size < 1 or stride < 1:
        raise ValueError(f"size and stride must be >= 1, got size={size}, stride={stride}")
    if edge not in EDGE_POLICIES:
        raise ValueError(f"unknown edge policy {edge!r}; choose from {', '.join(EDGE_POLICIES)}")
    if length < size and edge == "shift":
        raise ValueError(f"an axis of {length} px is shorter than a {size} px chip")
    if length <= size:
        return [0]
    count = math.ceil((length - size) / stride) + 1
    starts = [i * stride for i in range(count)]
    if edge == "shift":
        starts[-1] = length - size
    return starts


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
            raise InputError("--edge", f"unknown edge policy {self.edge!r}; choose shift or pad")
        if self.layout not in LAYOUTS:
            raise InputError("--layout", f"unknown layout {self.layout!r}; choose regular or selo")
        if not self.sizes:
            raise InputError("--size", "no chip size")
        for size in self.sizes:
            if size.unit == "fraction" or size.value <= 0:
                raise InputError("--size", f"a chip size is pixels (224) or metres (100m), got {size}")

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
        """Build from the CLI strings: ``--scales`` (comma list) wins over ``--size``/``default_size``."""
        if scales:
            sizes = parse_lengths(scales, "--scales")
        elif chip_size:
            sizes = (Length.parse(chip_size, "--size"),)
        elif layout == "selo":
            sizes = tuple(Length(s, "px") for s in SELO_SIZES)
        else:
            sizes = (Length(default_size, "px"),)
        return cls(sizes, Length.parse(overlap or "0", "--overlap"), edge, layout)

    @property
    def uses_metres(self) -> bool:
        """True when a size or the overlap is in metres (the grid needs a metric CRS)."""
        return self.overlap.is_metric or any(size.is_metric for size in self.sizes)

    def sizes_px(self, grid: PixelGrid, source: object = None) -> tuple[int, ...]:
        """Chip sizes in pixels of ``grid`` (metres converted with its resolution)."""
        mpp = metres_per_pixel(grid, source) if self.uses_metres else None
        return tuple(max(1, round(size.to_pixels(mpp))) for size in self.sizes)

    def stride_px(self, size_px: int, grid: PixelGrid, source: object = None) -> int:
        """Stride in pixels for chips of ``size_px``: size − overlap (at least 1 pixel)."""
        mpp = metres_per_pixel(grid, source) if self.overlap.is_metric else None
        stride = size_px - round(self.overlap.to_pixels(mpp, size_px))
        if stride < 1:
            raise InputError("--overlap", f"overlap {self.overlap} leaves no step for {size_px} px chips")
        return stride

    def windows(self, grid: PixelGrid, source: object = None) -> list[Window]:
        """Every window of every scale over ``grid`` (scales too large for a shift-edge grid are skipped)."""
        sizes = self.sizes_px(grid, source)
        if self.layout == "selo":
            return selo_windows(grid.width, grid.height, sizes)
        windows: list[Window] = []
        fitting = [s for s in sizes if self.edge == "pad" or (s <= grid.width and s <= grid.height)]
        if not fitting:
            raise InputError(
                source,
                f"the scene ({grid.width}×{grid.height} px) is smaller than a {min(sizes)} px chip; "
                "use a smaller --size or --edge pad",
            )
        for size in sizes:
            if size not in fitting:
                log.warning("%s: scale %d px is larger than the scene; skipped", source, size)
                continue
            stride = self.stride_px(size, grid, source)
            windows.extend(regular_windows(grid.width, grid.height, size, stride, self.edge))
        return windows

    def count(self, grid: PixelGrid, source: object = None) -> int:
        """Number of windows before filtering (the documented formula for the regular layout)."""
        if self.layout == "selo":
            return len(self.windows(grid, source))
        total = 0
        for size in self.sizes_px(grid, source):
            if self.edge == "pad" or (size <= grid.width and size <= grid.height):
                total += chip_count(grid.width, grid.height, size, self.stride_px(size, grid, source))
        return total


def plan_windows(
    reader: Any, spec: ChipGridSpec | None, aoi: Any = None, min_valid: float = 0.5
) -> list[Window]:
    """The windows of ``reader``'s working grid to read: the spec's windows (or the XYZ tiles of an XYZ
    reader), those meeting the AOI (a :class:`tile_tools.aoi.Aoi` or shapely geometry in the working CRS),
    and with at least ``min_valid`` valid pixels (``reader.valid_fraction``).

    An AOI outside the scene or no window left is an :class:`InputError`.
    """
    from tile_tools.aoi import windows_in_aoi

    if not 0.0 <= min_valid <= 1.0:
        raise InputError("--min-valid", f"must be between 0 and 1, got {min_valid}")
    if reader.xyz_origin is not None:
        from tile_tools.xyz import tile_windows

        windows = tile_windows(reader)
    else:
        if spec is None:
            raise ValueError("a ChipGridSpec is needed for a non-XYZ reader")
        windows = spec.windows(reader.grid, reader.path)
    if aoi is not None:
        windows = windows_in_aoi(windows, reader.grid, aoi, source=getattr(aoi, "source", "--aoi"))
    kept = [w for w in windows if reader.valid_fraction(w) >= min_valid - 1e-12]
    if not kept:
        where = " inside the AOI" if aoi is not None else ""
        raise InputError(reader.path, f"no chip has at least {min_valid:.0%} valid pixels{where}")
    return kept


@dataclass(frozen=True, eq=False)
class ChipPlan:
    """An open reader, the grid spec and the windows to read (close with ``plan.reader.close()``)."""

    reader: Any
    spec: ChipGridSpec | None
    windows: list[Window]

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
    **_: Any,
) -> ChipPlan:
    """Open ``scene`` and plan its windows from the ``chip_options`` CLI values (one call for every job).

    With ``xyz_zoom`` the chips are the scene's XYZ tiles, ``chip_size`` (pixels) their size (256).
    """
    from tile_tools.aoi import load_aoi
    from tile_tools.reader import SceneReader
    from tile_tools.xyz import check_zoom

    band_tuple = parse_bands(bands) if isinstance(bands, str) or bands is None else tuple(bands)
    spec = None
    tile_size = 256
    if xyz_zoom is not None:
        check_zoom(xyz_zoom)
        if chip_size:
            size = Length.parse(chip_size, "--size")
            if size.unit != "px":
                raise InputError("--size", "XYZ tiles take a size in pixels")
            tile_size = round(size.value)
    else:
        spec = ChipGridSpec.from_options(chip_size, overlap, scales, edge, layout, default_size)
    reader = SceneReader(
        scene,
        bands=band_tuple,
        stretch=stretch,
        gsd=gsd,
        read_raw=read_raw,
        metric=bool(spec and spec.uses_metres),
        xyz_zoom=xyz_zoom,
        tile_size=tile_size,
    )
    try:
        area = load_aoi(aoi, reader.source_grid.crs, reader.grid.crs) if aoi else None
        windows = plan_windows(reader, spec, area, min_valid)
    except Exception:
        reader.close()
        raise
    return ChipPlan(reader, spec, windows)
