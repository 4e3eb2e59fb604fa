"""XYZ web-map tiles (EPSG:3857, mercantile numbering) over a scene, and local tile folders as scenes.

Tiling a scene at zoom ``z``: open it with ``SceneReader(path, xyz_zoom=z)``. Its working grid is
the EPSG:3857 pixel grid of the tiles covering the scene (``tile_size`` px per tile, origin at the
top-left covering tile), so each tile is one window, read reprojected through a ``WarpedVRT``,
and each chip carries its ``mercantile.Tile``; :func:`tile_windows` lists the windows.

A local slippy-map folder ``root/z/x/y.png|jpg`` (XYZ numbering, y down) opens as a scene: a VRT
mosaic of the highest zoom found, missing tiles being nodata.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import mercantile
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

MAX_ZOOM = 24
MAX_TILES = 1_000_000
WEB_MERCATOR = CRS.from_epsg(3857)
_MAX_LAT = 85.0511287798066
_EPS = 1e-11


def check_zoom(zoom: int, source: object = "--xyz") -> int:
    """``zoom`` as an int in 0…24, else :class:`InputError`."""
    if not isinstance(zoom, int) or not 0 <= zoom <= MAX_ZOOM:
        raise InputError(source, f"zoom {zoom} is out of range (0 to {MAX_ZOOM})")
    return zoom


def tile_range(
    lnglat_bounds: tuple[float, float, float, float], zoom: int, source: object = "--xyz"
) -> tuple[int, int, int, int]:
    """(x_min, y_min, x_max, y_max), inclusive, of the zoom-``zoom`` tiles covering WGS 84 bounds."""
    check_zoom(zoom, source)
    west, south, east, north = lnglat_bounds
    if west > east:
        raise InputError(source, "the scene crosses the antimeridian; XYZ tiling is not supported")
    south, north = max(south, -_MAX_LAT), min(north, _MAX_LAT)
    if south >= north:
        raise InputError(source, "the scene lies outside the web-mercator latitude range (±85.05°)")
    west, east = max(west, -180.0), min(east, 180.0)
    upper_left = mercantile.tile(west + _EPS, north - _EPS, zoom)
    lower_right = mercantile.tile(max(west + _EPS, east - _EPS), min(north - _EPS, south + _EPS), zoom)
    return upper_left.x, upper_left.y, lower_right.x, lower_right.y


def tiles_covering(lnglat_bounds: tuple[float, float, float, float], zoom: int) -> list[mercantile.Tile]:
    """The zoom-``zoom`` tiles covering WGS 84 bounds, row by row."""
    x0, y0, x1, y1 = tile_range(lnglat_bounds, zoom)
    return [mercantile.Tile(x, y, zoom) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


def xyz_grid(
    lnglat_bounds: tuple[float, float, float, float],
    zoom: int,
    tile_size: int = 256,
    source: object = "--xyz",
) -> tuple[PixelGrid, tuple[int, int]]:
    """The EPSG:3857 pixel grid of the covering tiles, and the (x, y) of its top-left tile."""
    x0, y0, x1, y1 = tile_range(lnglat_bounds, zoom, source)
    count = (x1 - x0 + 1) * (y1 - y0 + 1)
    if count > MAX_TILES:
        raise InputError(source, f"zoom {zoom} gives {count} tiles over this scene; choose a lower zoom")
    left, _, _, top = mercantile.xy_bounds(mercantile.Tile(x0, y0, zoom))
    res = 2 * math.pi * 6378137.0 / (2**zoom * tile_size)
    grid = PixelGrid(
        width=(x1 - x0 + 1) * tile_size,
        height=(y1 - y0 + 1) * tile_size,
        transform=Affine(res, 0.0, left, 0.0, -res, top),
        crs=WEB_MERCATOR,
    )
    return grid, (x0, y0)


def tile_windows(reader: Any) -> list[Window]:
    """One window per XYZ tile of a reader opened with ``xyz_zoom`` (row by row)."""
    if reader.xyz_origin is None:
        raise ValueError("the reader was not opened with xyz_zoom")
    size = reader.tile_size
    return [
        Window(col, row, size, size)
        for row in range(0, reader.grid.height, size)
        for col in range(0, reader.grid.width, size)
    ]


def tile_window(reader: Any, tile: mercantile.Tile) -> Window:
    """The window of ``tile`` in an XYZ reader's grid."""
    x0, y0 = reader.xyz_origin
    size = reader.tile_size
    return Window((tile.x - x0) * size, (tile.y - y0) * size, size, size)


# --- local slippy-map folders ------------------------------------------------------------------
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}


def _zoom_levels(root: Path) -> list[int]:
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name))


def _tiles_in(root: Path, zoom: int) -> dict[tuple[int, int], Path]:
    tiles: dict[tuple[int, int], Path] = {}
    for x_dir in (root / str(zoom)).iterdir():
        if not (x_dir.is_dir() and x_dir.name.isdigit()):
            continue
        for file in x_dir.iterdir():
            if file.suffix.lower() in _IMAGE_SUFFIXES and file.stem.isdigit():
                tiles[(int(x_dir.name), int(file.stem))] = file
    return tiles


def slippy_folder_vrt(root: str | Path, zoom: int | None = None, tms: bool = False) -> str:
    """VRT XML mosaicking ``root/z/x/y.png|jpg`` (highest zoom unless ``zoom``) in EPSG:3857.

    Every tile is assumed to have the size of the first one. Tiles with an alpha band (RGBA,
    grey+alpha) give their alpha as the mask; missing tiles are invalid. ``tms``: y counted from the south (TMS) instead of the north (XYZ).
    """
    root = Path(root)
    levels = _zoom_levels(root)
    if not levels:
        raise InputError(root, "a folder, but not a slippy-map tile folder (no z/x/y.png|jpg inside)")
    zoom = levels[-1] if zoom is None else check_zoom(zoom, root)
    tiles = _tiles_in(root, zoom)
    if not tiles:
        raise InputError(root, f"no tile images under zoom level {zoom}")
    if tms:
        tiles = {(x, 2**zoom - 1 - y): path for (x, y), path in tiles.items()}
    first = tiles[min(tiles)]
    try:
        with rasterio.open(first) as tile:
            size, dtype = tile.width, tile.dtypes[0]
            interp = list(tile.colorinterp)
    except rasterio.errors.RasterioIOError:
        raise InputError(first, "tile image GDAL cannot read") from None
    if interp and interp[0] == ColorInterp.palette:
        raise InputError(first, "palette tiles are not supported; expand them to RGB(A) first")
    data_bands = [i + 1 for i, ci in enumerate(interp) if ci != ColorInterp.alpha][:3]
    xs = [x for x, _ in tiles]
    ys = [y for _, y in tiles]
    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    left, _, _, top = mercantile.xy_bounds(mercantile.Tile(x0, y0, zoom))
    res = 2 * math.pi * 6378137.0 / (2**zoom * size)
    geotransform = f"{left!r}, {res!r}, 0.0, {top!r}, 0.0, {-res!r}"

    def sources(band: str) -> str:
        return "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(path.resolve()))}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{size}" ySize="{size}"/>'
            f'<DstRect xOff="{(x - x0) * size}" yOff="{(y - y0) * size}" xSize="{size}" ySize="{size}"/>'
            "</SimpleSource>"
            for (x, y), path in sorted(tiles.items())
        )

    names = {1: "Red", 2: "Green", 3: "Blue"} if len(data_bands) == 3 else {1: "Gray"}
    bands_xml = "".join(
        f'<VRTRasterBand dataType="{_GDAL_TYPES.get(dtype, "Byte")}" band="{i}">'
        f"<ColorInterp>{names[i]}</ColorInterp>{sources(str(b))}</VRTRasterBand>"
        for i, b in enumerate(data_bands, start=1)
    )
    mask_xml = f'<MaskBand><VRTRasterBand dataType="Byte">{sources("mask,1")}</VRTRasterBand></MaskBand>'
    return (
        f'<VRTDataset rasterXSize="{(x1 - x0 + 1) * size}" rasterYSize="{(y1 - y0 + 1) * size}">'
        f"<SRS>EPSG:3857</SRS><GeoTransform>{geotransform}</GeoTransform>{bands_xml}{mask_xml}</VRTDataset>"
    )
