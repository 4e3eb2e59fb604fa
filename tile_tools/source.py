"""``ChipSource``: what the prefetcher, the planner's filters and the jobs read chips from.

:class:`tile_tools.reader.SceneReader` is one; a job can wrap it (e.g. to prepare model inputs in the
reader threads) or a test can fake it, as long as these three members are there.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from rasterio.windows import Window

from tile_tools.chip import Chip
from tile_tools.pixel_grid import PixelGrid


@runtime_checkable
class ChipSource(Protocol):
    """Reads chips of a working grid: ``grid`` (the :class:`PixelGrid` windows refer to), ``read_chip``
    (one integer window → :class:`Chip`; safe to call from several threads), ``valid_fraction``."""

    @property
    def grid(self) -> PixelGrid: ...

    def read_chip(self, window: Window) -> Chip: ...

    def valid_fraction(self, window: Window) -> float: ...
