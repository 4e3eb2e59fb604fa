"""Writing stitched results as GIS rasters, every one atomically (temporary file, then rename).

- :class:`CogWriter`: a Cloud-Optimized GeoTIFF (tiled, DEFLATE, overviews, nodata, band descriptions)
  fed block by block: ``with CogWriter(path, grid, count) as w: w.write(window, data)``. Several writers
  can be open at once and fed from one pass over an accumulator (one COG per query, or one multi-band
  COG). :func:`write_cog` is the same for an array or an iterable of :class:`~tile_tools.blocks.Block` s.
- :class:`ClassRasterWriter` / :func:`write_class_raster`: uint8 class COG with a colour table and
  category names (255 = nodata), mode overviews.
- :func:`write_preview_png` / :func:`write_overlay_png`: whole-array front ends of
  :class:`tile_tools.preview.PreviewWriter` (colour-mapped RGBA PNG; SeLo overlay 0.7·image + 0.3·heat
  colour), georeferenced by a GDAL ``.aux.xml`` sidecar (CRS and geotransform).

COGs are made with bounded memory: blocks go into a temporary tiled GeoTIFF beside the output, tile_tools
computes the overview levels block by block (GDAL's own overview builder holds whole-width strips), and
GDAL's COG driver copies data and overviews into place through a VRT, compressing with ``threads``
threads; GDAL's block cache is capped to a few MiB around every GDAL call.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

from tile_tools.blocks import Block, array_blocks, whole_pixels
from tile_tools.colormaps import class_colours
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.staged_output import StagedOutput, gdal_env

DEFAULT_NODATA = -9999.0
CLASS_NODATA = 255
#: Output chunk (pixels) of the overview builder: small, so its temporaries stay small.
LEVEL_CHUNK = 256
#: Compression threads of GDAL's COG driver (``NUM_THREADS``). Measured 2026-12-02 on a 2-core VM
#: already at load 5-8 (3000² × 4 float32): 1 thread 14.0 s, 2 threads 17.0 s, ALL_CPUS 17.9 s — no gain
#: without idle cores; kept at ALL_CPUS for machines whose cores are idle while outputs are written.
COG_THREADS: int | str = "ALL_CPUS"
#: DEFLATE level of the COGs: level 1 writes a 3000² × 4-band float32 COG in 62 % of level 6's time
#: for 4 % more bytes (measured here, 2026-12-02).
COG_DEFLATE_LEVEL = 1


def _level_sizes(width: int, height: int, block_size: int) -> list[tuple[int, int]]:
    """Overview sizes, halving until the level fits in one block (like the COG driver's AUTO)."""
    sizes = []
    while max(width, height) > block_size:
        width, height = math.ceil(width / 2), math.ceil(height / 2)
        sizes.append((width, height))
    return sizes


def _mean_2x2(quads: np.ndarray, valid: np.ndarray, nodata: float) -> np.ndarray:
    """Nodata-aware mean of each 2 × 2 group; ``quads`` is (C, h, w, 4)."""
    count = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, quads, 0.0).sum(axis=-1) / count
    return np.where(count > 0, mean, nodata)


def _mode_2x2(quads: np.ndarray, valid: np.ndarray, nodata: float) -> np.ndarray:
    """Most frequent valid value of each 2 × 2 group (ties: the first in row order)."""
    votes = np.stack(
        [((quads == quads[..., [k]]) & valid).sum(axis=-1) * valid[..., k] for k in range(4)], axis=-1
    )
    best = np.take_along_axis(quads, votes.argmax(axis=-1)[..., None], axis=-1)[..., 0]
    return np.where(votes.max(axis=-1) > 0, best, nodata)


def _write_level(source: Path, target: Path, size: tuple[int, int], reduce: str, profile: dict) -> None:
    """Write the next overview level of ``source`` (2 × 2 reduction) block by block."""
    width, height = size
    nodata, block = profile["nodata"], LEVEL_CHUNK
    reducer = _mode_2x2 if reduce == "mode" else _mean_2x2
    with (
        rasterio.open(source) as src,
        rasterio.open(target, "w", **{**profile, "width": width, "height": height}) as dst,
    ):
        for row in range(0, height, block):
            for col in range(0, width, block):
                h, w = min(block, height - row), min(block, width - col)
                window = Window(
                    2 * col, 2 * row, min(2 * w, src.width - 2 * col), min(2 * h, src.height - 2 * row)
                )
                data = src.read(window=window)
                pad = ((0, 0), (0, 2 * h - data.shape[1]), (0, 2 * w - data.shape[2]))
                data = np.pad(data, pad, constant_values=nodata)
                quads = data.reshape(data.shape[0], h, 2, w, 2).transpose(0, 1, 3, 2, 4).reshape(-1, h, w, 4)
                valid = (quads != nodata) & np.isfinite(quads)
                dst.write(
                    reducer(quads, valid, nodata).astype(profile["dtype"]), window=Window(col, row, w, h)
                )


def _vrt_xml(
    grid: PixelGrid,
    profile: dict,
    files: list[Path],
    descriptions: Sequence[str],
    colour_table: dict[int, tuple[int, ...]] | None,
) -> str:
    """A VRT over the staging file whose bands list ``files[1:]`` as their overviews."""
    t = grid.transform
    gdal_type = {"float32": "Float32", "uint8": "Byte"}[profile["dtype"]]
    srs = f"<SRS>{escape(grid.crs.to_wkt())}</SRS>" if grid.crs is not None else ""
    bands = []
    for band in range(1, profile["count"] + 1):
        parts = [f'<VRTRasterBand dataType="{gdal_type}" band="{band}">']
        parts.append(f"<NoDataValue>{profile['nodata']!r}</NoDataValue>")
        if band <= len(descriptions):
            parts.append(f"<Description>{escape(descriptions[band - 1])}</Description>")
        if colour_table is not None:
            entries = "".join(
                '<Entry c1="{}" c2="{}" c3="{}" c4="{}"/>'.format(*colour_table.get(i, (0, 0, 0, 0)))
                for i in range(256)
            )
            parts.append(f"<ColorInterp>Palette</ColorInterp><ColorTable>{entries}</ColorTable>")
        source = '<SourceFilename relativeToVRT="0">{}</SourceFilename><SourceBand>{}</SourceBand>'
        parts.append(f"<SimpleSource>{source.format(escape(str(files[0])), band)}</SimpleSource>")
        parts.extend(f"<Overview>{source.format(escape(str(f)), band)}</Overview>" for f in files[1:])
        parts.append("</VRTRasterBand>")
        bands.append("".join(parts))
    geotransform = f"{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}"
    return (
        f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">{srs}'
        f"<GeoTransform>{geotransform}</GeoTransform>{''.join(bands)}</VRTDataset>"
    )


class CogWriter(StagedOutput):
    """A COG on ``grid`` with ``count`` bands, written block by block, atomically.

    ``with CogWriter(path, grid, count) as w: w.write(window, data)`` — ``data`` (count, h, w) or (h, w)
    for one band, at ``window`` of ``grid`` (any order; blocks may be of any size). Float NaN is written
    as ``nodata``. Leaving the ``with`` normally builds the overviews (``overviews="mean"``: nodata-aware
    2 × 2 means, ``"mode"``: the most frequent value, halving until a level fits in one ``block_size``
    tile) and copies everything into ``path`` as a COG; leaving it by an exception leaves nothing (and an
    existing ``path`` untouched). ``colour_table`` (value → RGBA) and ``category_names`` (band 1, in the
    ``.aux.xml``) are for class rasters.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        grid: PixelGrid,
        count: int,
        dtype: str = "float32",
        nodata: float = DEFAULT_NODATA,
        band_descriptions: Sequence[str] | None = None,
        block_size: int = 256,
        overviews: str = "mean",
        threads: int | str = COG_THREADS,
        colour_table: Mapping[int, tuple[int, int, int, int]] | None = None,
        category_names: Sequence[str] | None = None,
    ) -> None:
        if block_size % 16 or block_size < 128:
            raise ValueError(f"block_size must be a multiple of 16 and >= 128 (COG driver), got {block_size}")
        if dtype not in ("float32", "uint8"):
            raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
        if overviews not in ("mean", "mode"):
            raise ValueError(f"overviews must be 'mean' or 'mode', got {overviews!r}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if band_descriptions is not None and len(band_descriptions) != count:
            raise ValueError(f"{len(band_descriptions)} band descriptions for {count} bands")
        super().__init__(path)
        self.grid = grid
        self.count = count
        self.dtype = dtype
        self.nodata = nodata
        self.block_size = block_size
        self.overviews = overviews
        self.threads = threads
        self.band_descriptions = list(band_descriptions or ())
        self.colour_table = dict(colour_table) if colour_table is not None else None
        self.category_names = list(category_names) if category_names is not None else None

    def _staging_profile(self) -> tuple[str, dict]:
        return "level0.tif", self._profile()

    def _profile(self) -> dict:
        return {
            "driver": "GTiff",
            "width": self.grid.width,
            "height": self.grid.height,
            "count": self.count,
            "dtype": self.dtype,
            "nodata": self.nodata,
            "tiled": True,
            "blockxsize": self.block_size,
            "blockysize": self.block_size,
            "BIGTIFF": "IF_SAFER",
        }

    def write(self, window: Window, data: np.ndarray) -> None:
        """Write ``data`` ((count, h, w), or (h, w) for one band) at ``window`` of the grid."""
        dst = self._writer()
        (r0, r1), (c0, c1) = whole_pixels(window)
        if r0 < 0 or c0 < 0 or r1 > self.grid.height or c1 > self.grid.width:
            raise ValueError(f"window {window} is not inside the {self.grid.width}x{self.grid.height} grid")
        values = np.asarray(data)
        if values.ndim == 2 and self.count == 1:
            values = values[None]
        if values.shape != (self.count, r1 - r0, c1 - c0):
            raise ValueError(
                f"{self.path}: data of shape {np.shape(data)} do not fit window {window} with {self.count} bands"
            )
        if self.dtype == "float32":
            values = values.astype(np.float32)
            values = np.where(np.isfinite(values), values, np.float32(self.nodata))
        else:
            values = values.astype(np.uint8)
        with gdal_env():
            dst.write(values, window=Window(c0, r0, c1 - c0, r1 - r0))

    def _finish(self) -> None:
        profile = self._profile()
        files = [self._staging]
        for size in _level_sizes(self.grid.width, self.grid.height, self.block_size):
            files.append(self._work / f"level{len(files)}.tif")
            _write_level(files[-2], files[-1], size, self.overviews, profile)
        vrt = self._work / "stack.vrt"
        xml = _vrt_xml(self.grid, profile, files, self.band_descriptions, self.colour_table)
        vrt.write_text(xml, encoding="utf-8")
        options = {
            "COMPRESS": "DEFLATE",
            "LEVEL": COG_DEFLATE_LEVEL,
            "PREDICTOR": "YES" if self.dtype == "float32" else "NO",
            "BLOCKSIZE": self.block_size,
            "OVERVIEWS": "FORCE_USE_EXISTING",
            "BIGTIFF": "IF_SAFER",
            "NUM_THREADS": self.threads,
        }
        rasterio.shutil.copy(vrt, self._tmp, driver="COG", **options)
        if self.category_names is not None:
            pam = _category_names_pam(self.category_names)
            self._tmp.with_name(self._tmp.name + ".aux.xml").write_text(pam, encoding="utf-8")


def _check_shape(name: str, grid: PixelGrid, shape: tuple[int, ...]) -> None:
    if tuple(shape[-2:]) != (grid.height, grid.width):
        raise ValueError(
            f"{name} is {shape[-1]}x{shape[-2]} pixels but the grid is {grid.width}x{grid.height}"
        )


def write_cog(
    path: str | os.PathLike[str],
    data: np.ndarray | Iterable[Block],
    grid: PixelGrid,
    nodata: float = DEFAULT_NODATA,
    band_descriptions: Sequence[str] | None = None,
    valid: np.ndarray | None = None,
    block_size: int = 256,
    threads: int | str = COG_THREADS,
) -> Path:
    """Write a float32 COG on ``grid``: ``data`` is (H, W), (C, H, W) or an iterable of
    :class:`~tile_tools.blocks.Block` s (e.g. ``WeightedAccumulator.iter_blocks()``); see :class:`CogWriter`.

    NaN and pixels outside ``valid`` (H, W bool, arrays only) are written as ``nodata``.
    """
    if isinstance(data, np.ndarray):
        array = data[None] if data.ndim == 2 else data
        if array.ndim != 3:
            raise ValueError(f"expected (H, W) or (C, H, W) data, got shape {data.shape}")
        _check_shape("data", grid, array.shape)
        count, blocks = array.shape[0], array_blocks(array, 1024, valid)
    else:
        iterator = iter(data)
        first = next(iterator, None)
        if first is None:
            raise ValueError(f"{path}: no blocks to write")
        count, blocks = first.data.shape[0], itertools.chain([first], iterator)
    with CogWriter(path, grid, count, "float32", nodata, band_descriptions, block_size, threads=threads) as w:
        for window, block in blocks:
            w.write(window, block)
    return w.path


def _category_names_pam(class_names: Sequence[str]) -> str:
    categories = "".join(f"<Category>{escape(name)}</Category>" for name in class_names)
    return (
        '<PAMDataset>\n  <PAMRasterBand band="1">\n'
        f"    <CategoryNames>{categories}</CategoryNames>\n"
        "  </PAMRasterBand>\n</PAMDataset>\n"
    )


class ClassRasterWriter(CogWriter):
    """A uint8 class COG written block by block: value ``i`` is ``class_names[i]``, ``nodata`` (255) is
    unlabelled. The colour table holds ``colors`` (RGB or RGBA, default
    :func:`~tile_tools.colormaps.class_colours`); category names go into the GDAL ``.aux.xml`` sidecar
    (what QGIS and ``gdalinfo`` read) and the band description is ``class``. Overviews take the most
    frequent class of each 2 × 2 group. ``write(window, classes)`` takes (h, w) integer classes."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        grid: PixelGrid,
        class_names: Sequence[str],
        colors: Sequence[Sequence[int]] | None = None,
        nodata: int = CLASS_NODATA,
        block_size: int = 256,
        threads: int | str = COG_THREADS,
    ) -> None:
        if not class_names or len(class_names) >= 255:
            raise InputError("class_names", f"need 1 to 254 class names, got {len(class_names)}")
        colours = list(colors) if colors is not None else class_colours(len(class_names))
        if len(colours) != len(class_names):
            raise InputError("colors", f"{len(colours)} colours for {len(class_names)} classes")
        table = {i: tuple(int(v) for v in c) + ((255,) if len(c) == 3 else ()) for i, c in enumerate(colours)}
        table[nodata] = (0, 0, 0, 0)
        super().__init__(
            path, grid, 1, "uint8", nodata, ["class"], block_size, "mode", threads, table, class_names
        )

    def write(self, window: Window, data: np.ndarray) -> None:
        values = np.asarray(data)
        labelled = values[values != self.nodata]
        if labelled.size and (
            int(labelled.max()) >= len(self.category_names or ()) or int(labelled.min()) < 0
        ):
            bad = int(labelled.max()) if int(labelled.max()) >= 0 else int(labelled.min())
            raise ValueError(
                f"{self.path}: class value {bad} has no name ({len(self.category_names or ())} classes)"
            )
        super().write(window, values)


def write_class_raster(
    path: str | os.PathLike[str],
    classes: np.ndarray,
    grid: PixelGrid,
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]] | None = None,
    nodata: int = CLASS_NODATA,
    block_size: int = 256,
) -> Path:
    """Write an (H, W) class array as a uint8 class COG (see :class:`ClassRasterWriter`)."""
    if classes.ndim != 2:
        raise ValueError(f"class raster must be (H, W), got shape {classes.shape}")
    _check_shape("classes", grid, classes.shape)
    with ClassRasterWriter(path, grid, class_names, colors, nodata, block_size) as w:
        for window, block in array_blocks(classes, 1024):
            w.write(window, block[0])
    return w.path


def write_preview_png(
    path: str | os.PathLike[str],
    heat: np.ndarray,
    colormap: str = "jet",
    valid: np.ndarray | None = None,
    grid: PixelGrid | None = None,
) -> Path:
    """RGBA PNG of an (H, W) heatmap in [0, 1] through ``colormap`` (``"jet"`` | ``"viridis"``), at full
    resolution; transparent where the heat is NaN or outside ``valid``. Georeferenced if ``grid``."""
    from tile_tools.preview import PreviewGrid, PreviewWriter

    if heat.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {heat.shape}")
    target = grid if grid is not None else PixelGrid(heat.shape[1], heat.shape[0], Affine.identity(), None)
    _check_shape("heat", target, heat.shape)
    with PreviewWriter(path, PreviewGrid(target, 1), colormap=colormap) as w:
        for window, block in array_blocks(heat, 1024, valid):
            w.write(window, block[0])
    return w.path


def write_overlay_png(
    path: str | os.PathLike[str],
    image: np.ndarray,
    heat: np.ndarray,
    grid: PixelGrid,
    colormap: str = "jet",
    heat_weight: float = 0.3,
    valid: np.ndarray | None = None,
) -> Path:
    """SeLo overlay of an (H, W) heatmap on an (H, W, 3) uint8 ``image``, both on ``grid``, at full
    resolution (see :class:`tile_tools.preview.PreviewWriter`); transparent where the heat is NaN or
    outside ``valid``."""
    from tile_tools.preview import PreviewGrid, PreviewWriter

    if heat.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {heat.shape}")
    _check_shape("heat", grid, heat.shape)
    preview = PreviewGrid(grid, 1)
    with PreviewWriter(path, preview, image, colormap, heat_weight) as w:
        for window, block in array_blocks(heat, 1024, valid):
            w.write(window, block[0])
    return w.path
