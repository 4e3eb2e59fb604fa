"""XYZ web-map tiles (EPSG:3857, mercantile numbering) over a scene, and local tile folders as scenes.

Tiling a scene at zoom ``z``: open it with ``SceneReader(path, xyz_zoom=z)``. Its working grid is
the EPSG:3857 pixel grid of the tiles covering the scene (``tile_size`` px per tile, origin at the
top-left covering tile), so each tile is one window, read reprojected through a ``WarpedVRT``,
and each chip carries its ``mercantile.Tile``; :func:`tile_windows` lists the windows.

A scene across the antimeridian keeps both sides: its working grid is the same spherical Mercator
centred on 180° (:data:`ANTIMERIDIAN_MERCATOR`, pixel-identical to EPSG:3857 but continuous there),
the tile columns wrap from ``2**z − 1`` to 0, and each tile chip still carries EPSG:3857 and the
transform of its ``mercantile.xy_bounds``.

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
_MERCATOR_180 = (
    "+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0={lon_0} +x_0=0 +y_0=0 +k=1 +units=m +nadgrids=@null +wktext"
    " +over +no_defs"
)
# The sphere of EPSG:3857 centred on the antimeridian. ``+over`` keeps longitudes past ±180° unwrapped,
# so a degree scene spelled 179…181° (or −181…−179°, with central meridian −180°) is found by GDAL.
ANTIMERIDIAN_MERCATOR = CRS.from_proj4(_MERCATOR_180.format(lon_0=180))
ANTIMERIDIAN_MERCATOR_WEST = CRS.from_proj4(_MERCATOR_180.format(lon_0=-180))
HALF_WORLD = math.pi * 6378137.0  # EPSG:3857 x of the antimeridian
_MAX_LAT = 85.0511287798066
_EPS = 1e-11


def check_zoom(zoom: int, source: object = "xyz_zoom") -> int:
    """``zoom`` as an int in 0…24, else :class:`InputError`."""
    if not isinstance(zoom, int) or not 0 <= zoom <= MAX_ZOOM:
        raise InputError(source, f"zoom {zoom} is out of range (0 to {MAX_ZOOM})")
    return zoom


def normalize_lnglat(bounds: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """WGS 84 bounds with west and east in −180…180; ``west > east`` for a box across the antimeridian
    (as GDAL's ``transform_bounds`` gives it), also when the input spells that as ``east > 180``."""
    west, south, east, north = bounds
    if east - west >= 360.0:
        return -180.0, south, 180.0, north
    if west < -180.0 or west > 180.0:
        shift = 360.0 * math.floor((west + 180.0) / 360.0)
        west, east = west - shift, east - shift
    if east > 180.0:
        east -= 360.0
    return west, south, east, north


def tile_range(
    lnglat_bounds: tuple[float, float, float, float], zoom: int, source: object = "xyz_zoom"
) -> tuple[int, int, int, int]:
    """(x_min, y_min, x_max, y_max), inclusive, of the zoom-``zoom`` tiles covering WGS 84 bounds;
    ``x_min > x_max`` when the bounds cross the antimeridian (the columns wrap)."""
    check_zoom(zoom, source)
    west, south, east, north = normalize_lnglat(lnglat_bounds)
    south, north = max(south, -_MAX_LAT), min(north, _MAX_LAT)
    if south >= north:
        raise InputError(source, "the scene lies outside the web-mercator latitude range (±85.05°)")
    east_inside = east - _EPS if west > east else max(west + _EPS, east - _EPS)
    upper_left = mercantile.tile(west + _EPS, north - _EPS, zoom)
    lower_right = mercantile.tile(east_inside, min(north - _EPS, south + _EPS), zoom)
    return upper_left.x, upper_left.y, lower_right.x, lower_right.y


def tile_columns(x_min: int, x_max: int, zoom: int) -> list[int]:
    """The tile x numbers from ``x_min`` to ``x_max`` eastwards (wrapping at the antimeridian)."""
    n = 2**zoom
    return [(x_min + i) % n for i in range((x_max - x_min) % n + 1)]


def tiles_covering(lnglat_bounds: tuple[float, float, float, float], zoom: int) -> list[mercantile.Tile]:
    """The zoom-``zoom`` tiles covering WGS 84 bounds, row by row (west to east across the antimeridian)."""
    x0, y0, x1, y1 = tile_range(lnglat_bounds, zoom)
    return [mercantile.Tile(x, y, zoom) for y in range(y0, y1 + 1) for x in tile_columns(x0, x1, zoom)]


def tile_transform(tile: mercantile.Tile, tile_size: int = 256) -> Affine:
    """The EPSG:3857 transform of ``tile`` at ``tile_size`` px."""
    left, _, _, top = mercantile.xy_bounds(tile)
    res = 2 * HALF_WORLD / (2**tile.z * tile_size)
    return Affine(res, 0.0, left, 0.0, -res, top)


def xyz_grid(
    lnglat_bounds: tuple[float, float, float, float],
    zoom: int,
    tile_size: int = 256,
    source: object = "xyz_zoom",
) -> tuple[PixelGrid, tuple[int, int]]:
    """The pixel grid of the covering tiles, and the (x, y) of its top-left tile: EPSG:3857, or for
    bounds across the antimeridian :data:`ANTIMERIDIAN_MERCATOR` (``…_WEST`` when the bounds are spelled
    west of −180°: same x values, longitudes unwrapped on that side)."""
    x0, y0, x1, y1 = tile_range(lnglat_bounds, zoom, source)
    columns = (x1 - x0) % 2**zoom + 1
    count = columns * (y1 - y0 + 1)
    if count > MAX_TILES:
        raise InputError(source, f"zoom {zoom} gives {count} tiles over this scene; choose a lower zoom")
    transform = tile_transform(mercantile.Tile(x0, y0, zoom), tile_size)
    crs = WEB_MERCATOR
    if x1 < x0:  # the same Mercator centred on 180°: x' = (x mod 2·HALF_WORLD) − HALF_WORLD
        crs = ANTIMERIDIAN_MERCATOR_WEST if lnglat_bounds[0] < -180.0 else ANTIMERIDIAN_MERCATOR
        transform = Affine(
            transform.a, 0.0, (transform.c % (2 * HALF_WORLD)) - HALF_WORLD, 0.0, transform.e, transform.f
        )
    grid = PixelGrid(
        width=columns * tile_size, height=(y1 - y0 + 1) * tile_size, transform=transform, crs=crs
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
    return Window(((tile.x - x0) % 2**tile.z) * size, (tile.y - y0) * size, size, size)


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
