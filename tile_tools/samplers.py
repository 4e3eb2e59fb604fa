"""Random chip windows over a scene's working grid (the idea of torchgeo's ``RandomGeoSampler``).

A regular grid (:mod:`tile_tools.grid`) visits every part of a scene once; training wants many,
differently placed chips. :func:`random_windows` draws square windows of the given pixel sizes
uniformly over a :class:`~tile_tools.pixel_grid.PixelGrid` (every window inside the grid), from a
seed, optionally only windows meeting an area of interest; :func:`sample_windows` adds a reader's
valid-data check, as :func:`tile_tools.grid.plan_windows` does for the regular grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

MAX_ATTEMPTS_PER_WINDOW = 20


def _fitting_sizes(grid: PixelGrid, sizes: Sequence[int]) -> list[int]:
    fitting = [int(s) for s in sizes if 0 < s <= grid.width and s <= grid.height]
    if not fitting:
        raise InputError("sizes", f"no chip size {list(sizes)} fits the {grid.width}×{grid.height} px grid")
    return fitting


def random_windows(
    grid: PixelGrid,
    sizes: int | Sequence[int],
    count: int,
    seed: int | np.random.Generator = 0,
    aoi: BaseGeometry | None = None,
) -> list[Window]:
    """``count`` square windows inside ``grid``: size uniform among ``sizes`` (pixels; sizes larger than
    the grid are left out), offsets uniform, drawn from ``seed``. With ``aoi`` (a geometry in the grid's
    CRS) only windows whose footprint meets it count; fewer are returned when the AOI is so small
    that ``20 × count`` draws do not find them all."""
    from tile_tools.aoi import window_footprints

    if count < 0:
        raise InputError("count", f"cannot draw {count} windows")
    options = _fitting_sizes(grid, [sizes] if isinstance(sizes, int) else list(sizes))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if aoi is not None:
        shapely.prepare(aoi)
    windows: list[Window] = []
    attempts = 0
    while len(windows) < count and attempts < MAX_ATTEMPTS_PER_WINDOW * max(count, 1):
        attempts += 1
        size = options[int(rng.integers(len(options)))]
        col = int(rng.integers(grid.width - size + 1))
        row = int(rng.integers(grid.height - size + 1))
        window = Window(col, row, size, size)
        if aoi is not None:
            footprint = window_footprints([window], grid)[0]
            if not shapely.intersects(aoi, footprint) or shapely.touches(aoi, footprint):
                continue
        windows.append(window)
    return windows


def sample_windows(
    reader: Any,
    sizes: int | Sequence[int],
    count: int,
    seed: int | np.random.Generator = 0,
    aoi: BaseGeometry | None = None,
    min_valid: float = 0.5,
) -> list[Window]:
    """Random windows of ``reader``'s working grid (see :func:`random_windows`) holding at least
    ``min_valid`` valid pixels (``reader.valid_fraction``); drawing goes on until ``count`` are found
    or ``20 × count`` draws are spent."""
    if not 0.0 <= min_valid <= 1.0:
        raise InputError("min_valid", f"must be between 0 and 1, got {min_valid}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    kept: list[Window] = []
    drawn, budget = 0, MAX_ATTEMPTS_PER_WINDOW * max(count, 1)
    while len(kept) < count and drawn < budget:
        batch = random_windows(reader.grid, sizes, count - len(kept), rng, aoi)
        if not batch:
            break
        drawn += len(batch)
        kept += [w for w in batch if reader.valid_fraction(w) >= min_valid - 1e-12]
    return kept
