"""Georeferenced synthetic scenes on disk: RGB GeoTIFF, truth class raster and truth polygons."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from geo_dfm.synthetic.classes import CLASS_NAMES, LANDCOVER_CLASSES, NODATA_CLASS, landcover_class
from geo_dfm.synthetic.layout import LAYOUTS
from geo_dfm.synthetic.render import render_scene
from tile_tools.errors import InputError

SCENE_NODATA = 0
"""RGB nodata value of scenes written with a nodata border (valid pixels are 1-255)."""

DEFAULT_CENTRE_LONLAT = (15.0, 48.0)
"""Scene centre (longitude, latitude) when none is given: inside UTM zone 33N."""

_METRES_PER_DEGREE_LAT = 110_574.0
_METRES_PER_DEGREE_LON_EQUATOR = 111_320.0


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """A synthetic scene written to disk, with its truth.

    ``truth`` holds class ids (index into ``class_names``) per pixel, ``NODATA_CLASS`` (255) in the
    nodata border.
    """

    path: Path
    truth: np.ndarray
    class_names: tuple[str, ...]
    transform: Affine
    crs: CRS
    truth_path: Path
    truth_raster_path: Path
    nodata: int | None
    seed: int
    layout: str

    @property
    def height(self) -> int:
        return int(self.truth.shape[0])

    @property
    def width(self) -> int:
        return int(self.truth.shape[1])

    def class_id(self, class_name: str) -> int:
        """The id of a class given by canonical name or synonym."""
        return landcover_class(class_name).id

    def mask(self, class_name: str) -> np.ndarray:
        """H×W bool array: where the scene shows ``class_name`` (a canonical name or synonym)."""
        return self.truth == self.class_id(class_name)

    def fraction(self, class_name: str) -> float:
        """Share of the valid pixels showing ``class_name``."""
        valid = self.truth != NODATA_CLASS
        return float(self.mask(class_name).sum() / max(1, valid.sum()))

    def window_truth(self, row_off: int, col_off: int, height: int, width: int) -> tuple[str | None, float]:
        """Majority class of a pixel window and its share of the window (``None`` if all nodata)."""
        block = self.truth[row_off : row_off + height, col_off : col_off + width]
        counts = np.bincount(block.ravel(), minlength=256)[: len(self.class_names)]
        if counts.sum() == 0:
            return None, 0.0
        best = int(np.argmax(counts))
        return self.class_names[best], float(counts[best] / block.size)


def scene_transform(
    crs: CRS, width: int, height: int, gsd: float, centre_lonlat: tuple[float, float]
) -> Affine:
    """North-up transform of a ``width``×``height`` scene centred on ``centre_lonlat``.

    ``gsd`` is the ground sampling distance in metres. In a geographic CRS it is converted to degrees
    at the centre latitude (square pixels on the ground); in a projected CRS it is divided by the
    CRS's linear unit (metres per unit).
    """
    from pyproj import CRS as ProjCRS
    from pyproj import Transformer

    proj = ProjCRS.from_user_input(crs.to_wkt())
    lon, lat = centre_lonlat
    if proj.is_geographic:
        size_x = gsd / (_METRES_PER_DEGREE_LON_EQUATOR * np.cos(np.radians(lat)))
        size_y = gsd / _METRES_PER_DEGREE_LAT
        cx, cy = lon, lat
    else:
        unit = proj.axis_info[0].unit_conversion_factor or 1.0
        size_x = size_y = gsd / unit
        cx, cy = Transformer.from_crs("EPSG:4326", proj, always_xy=True).transform(lon, lat)
    return Affine.translation(cx - width / 2 * size_x, cy + height / 2 * size_y) @ Affine.scale(
        size_x, -size_y
    )


def _check(
    width: int, height: int, gsd: float, classes: Sequence[str], layout: str, nodata_border: int
) -> None:
    if width < 16 or height < 16:
        raise InputError("width/height", f"a scene needs at least 16×16 pixels, got {width}×{height}")
    if not gsd > 0:
        raise InputError("gsd", f"ground sampling distance must be positive, got {gsd}")
    if layout not in LAYOUTS:
        raise InputError("layout", f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if not classes or all(c == "runway" for c in classes):
        raise InputError("classes", "need at least one area class besides runway")
    if nodata_border < 0 or 2 * nodata_border >= min(width, height):
        raise InputError("nodata_border", f"border of {nodata_border} px leaves no valid pixel")


def _write_rgb(path: Path, image: np.ndarray, transform: Affine, crs: CRS, nodata: int | None) -> None:
    import rasterio

    from tile_tools.atomic import atomic_file

    height, width = image.shape[:2]
    profile = dict(
        driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs=crs, transform=transform,
        nodata=nodata, photometric="RGB", compress="deflate", tiled=True, blockxsize=256, blockysize=256,
    )  # fmt: skip
    with atomic_file(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(np.moveaxis(image, 2, 0))
        for band, colour in enumerate(("red", "green", "blue"), start=1):
            dst.set_band_description(band, colour)


def _write_truth_raster(path: Path, truth: np.ndarray, transform: Affine, crs: CRS) -> None:
    import rasterio

    from tile_tools.atomic import atomic_file

    profile = dict(
        driver="GTiff", width=truth.shape[1], height=truth.shape[0], count=1, dtype="uint8", crs=crs,
        transform=transform, nodata=NODATA_CLASS, compress="deflate",
    )  # fmt: skip
    with atomic_file(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(truth, 1)
        dst.write_colormap(1, {c.id: (*c.colour, 255) for c in LANDCOVER_CLASSES})
        dst.update_tags(1, **{f"CLASS_{c.id}": c.name for c in LANDCOVER_CLASSES})
        dst.set_band_description(1, "land-cover class id")


def truth_polygons(truth: np.ndarray, transform: Affine, crs: CRS):  # -> geopandas.GeoDataFrame
    """One polygon per connected region of each class (pixel-exact outlines, in the scene CRS)."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    rows = [
        (int(value), CLASS_NAMES[int(value)], shape(geometry))
        for geometry, value in shapes(truth, mask=truth != NODATA_CLASS, connectivity=4, transform=transform)
    ]
    frame = gpd.GeoDataFrame(
        {"class_id": [r[0] for r in rows], "class_name": [r[1] for r in rows]},
        geometry=[r[2] for r in rows],
        crs=crs,
    )
    return frame


def make_scene(
    path: str | os.PathLike[str],
    width: int = 512,
    height: int = 512,
    crs: str | CRS = "EPSG:32633",
    gsd: float = 1.0,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    layout: str = "patchwork",
    nodata_border: int = 0,
    centre_lonlat: tuple[float, float] = DEFAULT_CENTRE_LONLAT,
) -> SyntheticScene:
    """Render a scene and write it as a georeferenced RGB GeoTIFF at ``path``.

    Beside it: ``<stem>_truth.tif`` (class ids, colour table, 255 = nodata) and ``<stem>_truth.gpkg``
    (layer ``truth``: class_id, class_name, polygons in the scene CRS). ``classes`` (canonical names or
    synonyms) limits the classes drawn; the default draws all of :data:`CLASS_NAMES`. With
    ``nodata_border`` > 0, that many pixels along each edge are nodata (RGB 0, truth 255).
    Each file appears atomically; the same arguments always give the same pixels.
    """
    from geo_dfm.synthetic.classes import landcover_class as lookup
    from tile_tools.vector_io import write_geopackage

    try:
        names = [lookup(c).name for c in (classes if classes is not None else CLASS_NAMES)]
    except KeyError as error:
        raise InputError("classes", str(error.args[0])) from None
    _check(width, height, gsd, names, layout, nodata_border)
    try:
        crs = crs if isinstance(crs, CRS) else CRS.from_user_input(crs)
    except Exception as error:
        raise InputError("crs", f"not a CRS: {crs!r} ({error})") from None
    target = Path(path)
    rendered = render_scene(width, height, seed, names, layout)
    image, truth = rendered.image.copy(), rendered.truth.copy()
    nodata = None
    if nodata_border > 0:
        b = nodata_border
        border = np.ones(truth.shape, dtype=bool)
        border[b:-b, b:-b] = False
        image[border] = SCENE_NODATA
        truth[border] = NODATA_CLASS
        nodata = SCENE_NODATA
    transform = scene_transform(crs, width, height, gsd, centre_lonlat)
    truth_path = target.with_name(f"{target.stem}_truth.gpkg")
    truth_raster_path = target.with_name(f"{target.stem}_truth.tif")
    _write_rgb(target, image, transform, crs, nodata)
    _write_truth_raster(truth_raster_path, truth, transform, crs)
    write_geopackage({"truth": truth_polygons(truth, transform, crs)}, truth_path)
    truth.setflags(write=False)
    return SyntheticScene(
        path=target.resolve(),
        truth=truth,
        class_names=CLASS_NAMES,
        transform=transform,
        crs=crs,
        truth_path=truth_path.resolve(),
        truth_raster_path=truth_raster_path.resolve(),
        nodata=nodata,
        seed=seed,
        layout=layout,
    )
