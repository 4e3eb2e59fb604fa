"""Mosaic VRTs: every scene's raster of one output kind as one layer (``OUT/mosaics/<kind>.vrt``).

A mosaic lives on a *lattice*: the run CRS, the pixel size and pixel corners of a reference raster (the
first scene of that kind already in the run CRS, else the first scene warped to it). A scene raster on
the lattice (same CRS and pixel size, corners on the lattice) enters the mosaic as it is, at integer
pixel offsets, so the mosaic shows exactly its pixels; any other (another CRS, another pixel size, off the
lattice) enters through a warped VRT onto the lattice cells covering it (``mosaics/warped/<id>_<kind>.vrt``,
nearest neighbour, so class values and nodata stay exact). Sources are ``ComplexSource`` s with the
nodata value, so a scene's nodata never hides another scene; where valid pixels of scenes overlap, the
later scene (input order) is on top. Paths inside VRTs are relative, so OUT can be moved as a whole.
Every VRT is written atomically.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from affine import Affine
from rasterio.crs import CRS

from geo_dfm.jobs.naming import unique_slugs
from tile_tools.atomic import atomic_file

#: Relative tolerance for "the same pixel size" and pixel offsets counted as whole.
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MosaicKind:
    """Mosaic ``name`` gathers file ``file`` of each scene's ``job`` folder."""

    name: str
    job: str
    file: str


def mosaic_kinds(jobs: Sequence[str], queries: Sequence[str]) -> list[MosaicKind]:
    """The mosaics of a run: ``classes`` and ``probabilities`` (classify), ``heatmap_<slug>`` per query
    (localize; the slug of the scene's ``<slug>.tif``)."""
    kinds = []
    if "classify" in jobs:
        kinds += [MosaicKind("classes", "classify", "classes.tif")]
        kinds += [MosaicKind("probabilities", "classify", "probabilities.tif")]
    if "localize" in jobs:
        kinds += [MosaicKind(f"heatmap_{s}", "localize", f"{s}.tif") for s in unique_slugs(queries)]
    return kinds


@dataclass(frozen=True)
class Lattice:
    """Pixel cells of size ``xres`` × ``yres`` (CRS units, both > 0, north up) with a corner at
    ``(x0, y0)`` in ``crs``."""

    crs: CRS
    xres: float
    yres: float
    x0: float
    y0: float

    @classmethod
    def of(cls, src: Any, crs: CRS) -> Lattice:
        """The lattice of the open raster ``src`` in ``crs`` (``src``'s own grid when it is in ``crs``)."""
        from rasterio.warp import calculate_default_transform

        t = src.transform
        if src.crs == crs and t.b == 0 and t.d == 0 and t.e < 0:
            return cls(crs, t.a, -t.e, t.c, t.f)
        t, _, _ = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        return cls(crs, t.a, -t.e, t.c, t.f)

    def transform(self, col: int, row: int) -> Affine:
        """The transform of the lattice cell ``(col, row)`` as a raster's top-left pixel."""
        return Affine(self.xres, 0.0, self.x0 + col * self.xres, 0.0, -self.yres, self.y0 - row * self.yres)

    def offsets(self, src: Any) -> tuple[int, int] | None:
        """``(col, row)`` of ``src``'s top-left pixel when ``src`` lies on the lattice, else ``None``."""
        t = src.transform
        same_size = math.isclose(t.a, self.xres, rel_tol=_TOLERANCE) and math.isclose(
            -t.e, self.yres, rel_tol=_TOLERANCE
        )
        if src.crs != self.crs or t.b != 0 or t.d != 0 or not same_size:
            return None
        col, row = (t.c - self.x0) / self.xres, (self.y0 - t.f) / self.yres
        if abs(col - round(col)) > _TOLERANCE or abs(row - round(row)) > _TOLERANCE:
            return None
        return round(col), round(row)

    def cover(self, bounds: Sequence[float]) -> tuple[int, int, int, int]:
        """``(col, row, width, height)`` of the lattice cells covering ``(left, bottom, right, top)``."""
        left, bottom, right, top = bounds
        col0 = math.floor((left - self.x0) / self.xres + _TOLERANCE)
        col1 = math.ceil((right - self.x0) / self.xres - _TOLERANCE)
        row0 = math.floor((self.y0 - top) / self.yres + _TOLERANCE)
        row1 = math.ceil((self.y0 - bottom) / self.yres - _TOLERANCE)
        return col0, row0, max(col1 - col0, 1), max(row1 - row0, 1)


@dataclass(frozen=True)
class Placed:
    """A raster file placed on the lattice at cell ``(col, row)``, ``width`` × ``height`` cells."""

    path: Path
    col: int
    row: int
    width: int
    height: int
    block: tuple[int, int]


def write_mosaic(
    path: Path,
    sources: Sequence[tuple[str, Path]],
    crs: CRS,
    warped_folder: Path,
    category_names: Sequence[str] | None = None,
) -> Path:
    """Write the mosaic VRT of ``sources`` (``(scene id, raster path)`` in input order) at ``path``.

    Rasters off the lattice get a warped VRT ``warped_folder/<id>_<path.stem>.vrt``. ``category_names``
    are set on band 1 (class rasters)."""
    import rasterio

    if not sources:
        raise ValueError(f"{path}: a mosaic needs at least one source")
    with rasterio.open(_reference(sources, crs)) as ref:
        lattice = Lattice.of(ref, crs)
        bands = _band_xml_parts(ref, category_names)
        dtype, nodata, count = ref.dtypes[0], ref.nodata, ref.count
    placed = []
    for scene_id, source in sources:
        with rasterio.open(source) as src:
            if src.count != count or src.dtypes[0] != dtype:
                raise ValueError(
                    f"{source}: {src.count} × {src.dtypes[0]} bands, the mosaic has {count} × {dtype}"
                )
            offsets = lattice.offsets(src)
            if offsets is not None:
                block = src.block_shapes[0]
                placed.append(Placed(Path(source), *offsets, src.width, src.height, (block[1], block[0])))
                continue
        warped = warped_folder / f"{scene_id}_{path.stem}.vrt"
        placed.append(write_warped_vrt(warped, Path(source), lattice))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(_mosaic_xml(path, placed, lattice, bands, dtype, nodata), encoding="utf-8")
    return path


def _reference(sources: Sequence[tuple[str, Path]], crs: CRS) -> Path:
    import rasterio

    for _, source in sources:
        with rasterio.open(source) as src:
            if src.crs == crs:
                return Path(source)
    return Path(sources[0][1])


def write_warped_vrt(path: Path, source: Path, lattice: Lattice) -> Placed:
    """A warped VRT of ``source`` onto the lattice cells covering it (nearest neighbour, the source's
    nodata outside it), atomically; its placement."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(source.absolute()) as src:
        bounds = transform_bounds(src.crs, lattice.crs, *src.bounds, densify_pts=21)
        col, row, width, height = lattice.cover(bounds)
        options = dict(
            crs=lattice.crs, transform=lattice.transform(col, row), width=width, height=height,
            resampling=Resampling.nearest, nodata=src.nodata,
        )  # fmt: skip
        with WarpedVRT(src, **options) as vrt, atomic_file(path) as tmp:
            rasterio.shutil.copy(vrt, tmp, driver="VRT")
            _relative_source(tmp, source.absolute(), path.parent)
            block = vrt.block_shapes[0]
    return Placed(path, col, row, width, height, (block[1], block[0]))


def _relative_source(vrt: Path, source: Path, folder: Path) -> None:
    """Point the warped VRT's ``SourceDataset`` at ``source`` relative to ``folder`` (the VRT's final
    folder): GDAL writes it absolute when the source is not below the VRT."""
    tree = ET.parse(vrt)
    for node in tree.getroot().iter("SourceDataset"):
        node.text = _relative(source, folder)
        node.set("relativeToVRT", "1")
    tree.write(vrt, encoding="unicode")


def _relative(source: Path, folder: Path) -> str:
    return Path(os.path.relpath(source.absolute(), folder.absolute())).as_posix()


def _band_xml_parts(src: Any, category_names: Sequence[str] | None) -> list[str]:
    """Per band: the VRT elements describing it (nodata, description, colours, categories)."""
    parts = []
    for band in range(1, src.count + 1):
        xml = []
        if src.nodata is not None:
            xml.append(f"<NoDataValue>{src.nodata!r}</NoDataValue>")
        description = src.descriptions[band - 1]
        if description:
            xml.append(f"<Description>{escape(description)}</Description>")
        if band == 1 and category_names:
            xml.append(
                "<CategoryNames>"
                + "".join(f"<Category>{escape(n)}</Category>" for n in category_names)
                + "</CategoryNames>"
            )
        try:
            colours = src.colormap(band)
        except ValueError:  # no colour table
            colours = None
        if colours:
            entries = "".join(
                '<Entry c1="{}" c2="{}" c3="{}" c4="{}"/>'.format(*colours.get(i, (0, 0, 0, 0)))
                for i in range(256)
            )
            xml.append(f"<ColorInterp>Palette</ColorInterp><ColorTable>{entries}</ColorTable>")
        parts.append("".join(xml))
    return parts


def _mosaic_xml(
    path: Path, placed: Sequence[Placed], lattice: Lattice, bands: Sequence[str], dtype: str, nodata: Any
) -> str:
    from rasterio.dtypes import _gdal_typename

    gdal_type = _gdal_typename(dtype)
    col0 = min(p.col for p in placed)
    row0 = min(p.row for p in placed)
    width = max(p.col + p.width for p in placed) - col0
    height = max(p.row + p.height for p in placed) - row0
    t = lattice.transform(col0, row0)
    nodata_xml = f"<NODATA>{nodata!r}</NODATA>" if nodata is not None else ""
    band_xml = []
    for band, band_parts in enumerate(bands, start=1):
        sources = []
        for p in placed:
            sources.append(
                "<ComplexSource>"
                f'<SourceFilename relativeToVRT="1">{escape(_relative(p.path, path.parent))}</SourceFilename>'
                f"<SourceBand>{band}</SourceBand>"
                f'<SourceProperties RasterXSize="{p.width}" RasterYSize="{p.height}" DataType="{gdal_type}" '
                f'BlockXSize="{p.block[0]}" BlockYSize="{p.block[1]}"/>'
                f'<SrcRect xOff="0" yOff="0" xSize="{p.width}" ySize="{p.height}"/>'
                f'<DstRect xOff="{p.col - col0}" yOff="{p.row - row0}" xSize="{p.width}" ySize="{p.height}"/>'
                f"{nodata_xml}</ComplexSource>"
            )
        band_xml.append(
            f'<VRTRasterBand dataType="{gdal_type}" band="{band}">{band_parts}{"".join(sources)}</VRTRasterBand>'
        )
    geotransform = f"{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}"
    srs = f"<SRS>{escape(lattice.crs.to_wkt())}</SRS>"  # GDAL reads it in GIS (x = east) axis order
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}'
        f"<GeoTransform>{geotransform}</GeoTransform>{''.join(band_xml)}</VRTDataset>\n"
    )
