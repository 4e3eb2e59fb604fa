"""Writing stitched results as GIS rasters, every one atomically (temporary file, then rename).

- :func:`write_cog`: float32 Cloud-Optimized GeoTIFF (tiled, DEFLATE, overviews, nodata outside the
  valid data, band descriptions) from an array or from blocks (:class:`tile_tools.accumulate.Block`),
  so outputs larger than memory stream through.
- :func:`write_class_raster`: uint8 class COG with a colour table and category names (255 = nodata).
- :func:`write_preview_png`: colour-mapped RGBA PNG of a [0, 1] heatmap, transparent outside valid data.
- :func:`write_overlay_png`: SeLo-style overlay (0.7·image + 0.3·heat colour) as a PNG georeferenced by a
  GDAL ``.aux.xml`` sidecar (CRS and geotransform), which GDAL and QGIS read.

COGs are made with bounded memory: blocks go into a temporary tiled GeoTIFF, tile_tools computes the
overview levels block by block (GDAL's own overview builder holds whole-width strips), and GDAL's COG
driver copies data and overviews into place through a VRT; GDAL's block cache is capped meanwhile.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from tile_tools.accumulate import Block
from tile_tools.atomic import atomic_file
from tile_tools.colormaps import apply_colormap, class_colours
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

DEFAULT_NODATA = -9999.0
CLASS_NODATA = 255
#: GDAL block cache (MiB) while writing; keeps memory flat for huge outputs.
WRITE_CACHE_MB = 4
#: Output chunk (pixels) of the overview builder: small, so its temporaries stay small.
LEVEL_CHUNK = 256


def _array_blocks(data: np.ndarray, valid: np.ndarray | None, block: int) -> Iterable[Block]:
    _, height, width = data.shape
    for row in range(0, height, block):
        for col in range(0, width, block):
            window = Window(col, row, min(block, width - col), min(block, height - row))
            rows, cols = window.toslices()
            piece = np.asarray(data[:, rows, cols])
            if valid is not None:
                piece = np.where(valid[rows, cols], piece, np.nan)
            yield Block(window, piece)


def _check_grid(path: Path, grid: PixelGrid, shape: tuple[int, ...]) -> None:
    if tuple(shape[-2:]) != (grid.height, grid.width):
        raise InputError(
            path, f"data is {shape[-1]}x{shape[-2]} pixels but the grid is {grid.width}x{grid.height}"
        )


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


def _write_via_cog(
    target: Path,
    blocks: Iterable[Block],
    grid: PixelGrid,
    count: int,
    dtype: str,
    nodata: float,
    block_size: int,
    reduce: str,
    descriptions: Sequence[str] = (),
    colour_table: dict[int, tuple[int, ...]] | None = None,
    pam_xml: str | None = None,
) -> Path:
    """Blocks → staging tiled GeoTIFF + overview levels (``reduce``: ``"mean"`` | ``"mode"`` of 2 × 2,
    nodata-aware, computed block by block) → VRT → GDAL COG driver → ``target``, atomically, with an
    optional ``.aux.xml`` sidecar holding ``pam_xml``. Memory stays flat whatever the raster size."""
    if block_size % 16 or block_size < 128:
        raise ValueError(f"block_size must be a multiple of 16 and >= 128 (COG driver), got {block_size}")
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": block_size,
        "blockysize": block_size,
        "BIGTIFF": "IF_SAFER",
    }
    options = {
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "YES" if dtype == "float32" else "NO",
        "BLOCKSIZE": block_size,
        "OVERVIEWS": "FORCE_USE_EXISTING",
        "BIGTIFF": "IF_SAFER",
    }
    with (
        atomic_file(target) as tmp,
        tempfile.TemporaryDirectory(prefix=f".{target.stem}.", dir=target.parent) as work,
        rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_MB, GDAL_SWATH_SIZE=WRITE_CACHE_MB * 2**20 // 2),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        files = [Path(work) / "level0.tif"]
        with rasterio.open(files[0], "w", **profile) as dst:
            for window, data in blocks:
                dst.write(data, window=window)
        for size in _level_sizes(grid.width, grid.height, block_size):
            files.append(Path(work) / f"level{len(files)}.tif")
            _write_level(files[-2], files[-1], size, reduce, profile)
        vrt = Path(work) / "stack.vrt"
        vrt.write_text(_vrt_xml(grid, profile, files, descriptions, colour_table), encoding="utf-8")
        rasterio.shutil.copy(vrt, tmp, driver="COG", **options)
        if pam_xml is not None:
            tmp.with_name(tmp.name + ".aux.xml").write_text(pam_xml, encoding="utf-8")
    return target


def write_cog(
    path: str | os.PathLike[str],
    data: np.ndarray | Iterable[Block],
    grid: PixelGrid,
    nodata: float = DEFAULT_NODATA,
    band_descriptions: Sequence[str] | None = None,
    valid: np.ndarray | None = None,
    block_size: int = 256,
) -> Path:
    """Write a float32 COG on ``grid``: ``data`` is (H, W), (C, H, W) or an iterable of
    :class:`~tile_tools.accumulate.Block` s (e.g. ``WeightedAccumulator.iter_blocks()``).

    NaN and pixels outside ``valid`` (H, W bool, arrays only) are written as ``nodata``. Overviews are
    nodata-aware 2 × 2 means, halving until a level fits in one ``block_size`` block.
    """
    target = Path(path)
    if isinstance(data, np.ndarray):
        array = data[None] if data.ndim == 2 else data
        if array.ndim != 3:
            raise InputError(target, f"expected (H, W) or (C, H, W) data, got shape {data.shape}")
        _check_grid(target, grid, array.shape)
        if valid is not None and valid.shape != array.shape[1:]:
            raise InputError(
                target, f"valid mask shape {valid.shape} differs from the data's {array.shape[1:]}"
            )
        count, blocks = array.shape[0], _array_blocks(array, valid, block_size)
    else:
        iterator = iter(data)
        first = next(iterator, None)
        if first is None:
            raise InputError(target, "no blocks to write")
        count, blocks = first.data.shape[0], itertools.chain([first], iterator)
    if band_descriptions is not None and len(band_descriptions) != count:
        raise InputError(target, f"{len(band_descriptions)} band descriptions for {count} bands")

    def float_blocks() -> Iterator[Block]:
        for window, block in blocks:
            values = np.asarray(block, dtype=np.float32).reshape(count, int(window.height), int(window.width))
            yield Block(window, np.where(np.isfinite(values), values, np.float32(nodata)))

    return _write_via_cog(
        target, float_blocks(), grid, count, "float32", nodata, block_size, "mean", band_descriptions or ()
    )


def _category_names_pam(class_names: Sequence[str]) -> str:
    categories = "".join(f"<Category>{escape(name)}</Category>" for name in class_names)
    return (
        '<PAMDataset>\n  <PAMRasterBand band="1">\n'
        f"    <CategoryNames>{categories}</CategoryNames>\n"
        "  </PAMRasterBand>\n</PAMDataset>\n"
    )


def write_class_raster(
    path: str | os.PathLike[str],
    classes: np.ndarray,
    grid: PixelGrid,
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]] | None = None,
    nodata: int = CLASS_NODATA,
    block_size: int = 256,
) -> Path:
    """Write a uint8 class COG: value ``i`` is ``class_names[i]``, ``nodata`` (255) is unlabelled.

    The colour table holds ``colors`` (RGB or RGBA, default :func:`~tile_tools.colormaps.class_colours`);
    category names go into the GDAL ``.aux.xml`` sidecar (what QGIS and ``gdalinfo`` read) and the band
    description. Overviews take the most frequent class of each 2 × 2 group.
    """
    target = Path(path)
    if classes.ndim != 2:
        raise InputError(target, f"class raster must be (H, W), got shape {classes.shape}")
    _check_grid(target, grid, classes.shape)
    if not class_names or len(class_names) >= 255:
        raise InputError(target, f"need 1 to 254 class names, got {len(class_names)}")
    colours = list(colors) if colors is not None else class_colours(len(class_names))
    if len(colours) != len(class_names):
        raise InputError(target, f"{len(colours)} colours for {len(class_names)} classes")
    values = np.asarray(classes)
    labelled = values[values != nodata]
    if labelled.size and int(labelled.max()) >= len(class_names):
        raise InputError(
            target, f"class value {int(labelled.max())} has no name ({len(class_names)} classes)"
        )
    colour_table = {
        i: tuple(int(v) for v in c) + ((255,) if len(c) == 3 else ()) for i, c in enumerate(colours)
    }
    colour_table[nodata] = (0, 0, 0, 0)

    blocks = _array_blocks(values.astype(np.uint8)[None], None, block_size)
    pam = _category_names_pam(class_names)
    return _write_via_cog(
        target, blocks, grid, 1, "uint8", nodata, block_size, "mode", ["class"], colour_table, pam
    )


def _rgba(colours: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.concatenate([colours.transpose(2, 0, 1), alpha[None].astype(np.uint8)], axis=0)


def _write_png(path: Path, rgba: np.ndarray, grid: PixelGrid | None) -> Path:
    profile = {"driver": "PNG", "width": rgba.shape[2], "height": rgba.shape[1], "count": 4, "dtype": "uint8"}
    if grid is not None:
        _check_grid(path, grid, rgba.shape)
        profile.update(crs=grid.crs, transform=grid.transform)
    with atomic_file(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(rgba)
    return path


def _valid_pixels(heat: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    ok = np.isfinite(heat)
    return ok if valid is None else ok & valid


def write_preview_png(
    path: str | os.PathLike[str],
    heat: np.ndarray,
    colormap: str = "jet",
    valid: np.ndarray | None = None,
    grid: PixelGrid | None = None,
) -> Path:
    """RGBA PNG of an (H, W) heatmap in [0, 1] through ``colormap`` (``"jet"`` | ``"viridis"``);
    transparent where the heat is NaN or outside ``valid``. Georeferenced (``.aux.xml``) if ``grid``."""
    target = Path(path)
    if heat.ndim != 2:
        raise InputError(target, f"heatmap must be (H, W), got shape {heat.shape}")
    alpha = np.where(_valid_pixels(heat, valid), 255, 0)
    return _write_png(target, _rgba(apply_colormap(heat, colormap), alpha), grid)


def write_overlay_png(
    path: str | os.PathLike[str],
    image: np.ndarray,
    heat: np.ndarray,
    grid: PixelGrid,
    colormap: str = "jet",
    heat_weight: float = 0.3,
    valid: np.ndarray | None = None,
) -> Path:
    """SeLo overlay: ``(1 − heat_weight)·image + heat_weight·colour(heat)`` (rounded, like OpenCV's
    ``addWeighted``) where the heat is valid, the image elsewhere; ``image`` is (H, W, 3) uint8 on the
    same ``grid`` as ``heat``. Written as an RGBA PNG with a ``.aux.xml`` holding CRS and transform."""
    target = Path(path)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != heat.shape:
        raise InputError(target, f"image must be (H, W, 3) like the heatmap {heat.shape}, got {image.shape}")
    ok = _valid_pixels(heat, valid)
    blended = (1.0 - heat_weight) * image + heat_weight * apply_colormap(heat, colormap)
    colours = np.where(ok[..., None], np.clip(np.rint(blended), 0, 255), image).astype(np.uint8)
    alpha = np.full(heat.shape, 255) if valid is None else np.where(valid, 255, 0)
    return _write_png(target, _rgba(colours, alpha), grid)
