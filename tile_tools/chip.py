"""``Chip``: one model-sized piece of a scene, with everything needed to put results back on the map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from tile_tools.pixel_grid import PixelGrid


@dataclass(frozen=True, eq=False)
class Chip:
    """Pixels of one window of a scene's working grid.

    - ``image``: H×W×3 uint8, the model input (stretched once per scene; zero where invalid);
    - ``mask``: H×W bool, True where the scene has valid data;
    - ``window``: the window in the working grid (may reach beyond the grid with the pad edge policy);
    - ``transform``: the window's affine transform (``rasterio.windows.transform``);
    - ``crs``: the working grid's CRS (``None`` for pixel-only scenes);
    - ``scale``: chip size in working-grid pixels (the window's longer side);
    - ``raw``: every source band, bands×H×W in the source dtype, or ``None`` unless asked;
    - ``tile``: the ``mercantile.Tile`` of an XYZ chip, else ``None``;
    - ``scene``: path of the scene.
    """

    image: np.ndarray
    mask: np.ndarray
    window: Window
    transform: Affine
    crs: CRS | None
    scale: int
    raw: np.ndarray | None = None
    tile: object | None = None
    scene: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the chip."""
        return self.mask.shape

    @property
    def valid_fraction(self) -> float:
        """Fraction of the chip's pixels holding valid data."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the chip in its CRS (pixel units when there is none)."""
        height, width = self.shape
        return window_bounds(Window(0, 0, width, height), self.transform)

    @property
    def tile_id(self) -> str | None:
        """``"z/x/y"`` for an XYZ chip, else ``None``."""
        if self.tile is None:
            return None
        return f"{self.tile.z}/{self.tile.x}/{self.tile.y}"


@dataclass(frozen=True, eq=False)
class GridImage:
    """A scene's 8-bit RGB resampled onto a whole (usually decimated) grid, for previews and overlays.

    - ``image``: H×W×3 uint8 (zero where invalid);
    - ``mask``: H×W bool, True where the scene has valid data;
    - ``grid``: the :class:`PixelGrid` the pixels lie on (``H × W`` = ``grid.shape``).
    """

    image: np.ndarray
    mask: np.ndarray
    grid: PixelGrid
