"""Chips on disk: one small GeoTIFF per chip and an index GeoPackage of their footprints."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp

from tile_tools.atomic import atomic_file
from tile_tools.chip import Chip

INDEX_LAYER = "chips"


def chip_filename(chip: Chip) -> str:
    """``z_x_y.tif`` for an XYZ chip, else ``s<scale>_r<row>_c<col>.tif`` (window offsets in the grid)."""
    if chip.tile is not None:
        return f"{chip.tile.z}_{chip.tile.x}_{chip.tile.y}.tif"
    w = chip.window
    return f"s{chip.scale}_r{int(w.row_off)}_c{int(w.col_off)}.tif"


def write_chip_geotiff(chip: Chip, path: str | os.PathLike[str], raw: bool = False) -> Path:
    """Write ``chip.image`` (3-band uint8 RGB) or ``chip.raw`` (every band, source dtype) as a GeoTIFF
    with the chip's transform and CRS; invalid pixels are masked by an internal mask band."""
    path = Path(path)
    if raw:
        if chip.raw is None:
            raise ValueError("the chip carries no raw bands (open the reader with read_raw=True)")
        data = chip.raw
    else:
        data = chip.image.transpose(2, 0, 1)
    count, height, width = data.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "transform": chip.transform,
        "compress": "deflate",
    }
    if chip.crs is not None:
        profile["crs"] = chip.crs
    if not raw:
        profile["photometric"] = "RGB"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if not raw:
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        if not chip.mask.all():
            dst.write_mask(chip.mask.astype(np.uint8) * 255)
    return path


@dataclass(frozen=True)
class ChipRecord:
    """One row of the chip index."""

    file: str
    scene: str
    col_off: int
    row_off: int
    width: int
    height: int
    scale: int
    valid_fraction: float
    tile: str | None
    footprint: Any  # shapely Polygon in the chip CRS

    @classmethod
    def of(cls, chip: Chip, file: str) -> ChipRecord:
        from shapely.geometry import Polygon

        w = chip.window
        height, width = chip.shape
        corners = [chip.transform @ xy for xy in ((0, 0), (width, 0), (width, height), (0, height))]
        return cls(
            file=file,
            scene=chip.scene,
            col_off=int(w.col_off),
            row_off=int(w.row_off),
            width=int(w.width),
            height=int(w.height),
            scale=chip.scale,
            valid_fraction=round(chip.valid_fraction, 6),
            tile=chip.tile_id,
            footprint=Polygon(corners),
        )


def write_chip_index(records: Iterable[ChipRecord], crs: CRS | None, path: str | os.PathLike[str]) -> Path:
    """Write the index GeoPackage (layer ``chips``): footprints in ``crs`` with window, scale and tile.

    A scene without CRS gets an attribute-only table (no geometry) in the same layer.
    """
    import geopandas as gpd
    import pandas as pd

    from tile_tools.vector_io import write_geopackage

    rows = list(records)
    table = pd.DataFrame(
        [{k: v for k, v in vars(r).items() if k != "footprint"} for r in rows],
        columns=[f for f in ChipRecord.__dataclass_fields__ if f != "footprint"],
    )
    if crs is not None:
        frame = gpd.GeoDataFrame(table, geometry=[r.footprint for r in rows], crs=crs)
        return write_geopackage({INDEX_LAYER: frame}, path)
    import pyogrio

    target = Path(path)
    with atomic_file(target) as tmp:
        pyogrio.write_dataframe(table, tmp, layer=INDEX_LAYER, driver="GPKG")
    return target


def export_chips(
    chips: Iterable[Chip],
    folder: str | os.PathLike[str],
    subfolder: str = "chips",
    raw: bool = False,
    min_valid: float = 0.0,
    on_chip: Callable[[Chip], None] | None = None,
) -> list[ChipRecord]:
    """Write every chip with at least ``min_valid`` valid pixels (exact check) into ``folder/subfolder``;
    the records' ``file`` is relative to ``folder``."""
    folder = Path(folder) / subfolder
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for chip in chips:
        if chip.valid_fraction >= min_valid - 1e-12:
            name = chip_filename(chip)
            write_chip_geotiff(chip, folder / name, raw=raw)
            records.append(ChipRecord.of(chip, f"{subfolder}/{name}"))
        if on_chip is not None:
            on_chip(chip)
    return records
