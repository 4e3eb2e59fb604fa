"""Writing vector layers: one GeoPackage, several layers, written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd

from tile_tools.atomic import atomic_file


def write_geopackage(layers: Mapping[str, gpd.GeoDataFrame], path: str | os.PathLike[str]) -> Path:
    """Write each GeoDataFrame as a named layer of one GeoPackage at ``path``.

    Every frame must carry a CRS (pixel-only data has no place in a GeoPackage). The file
    appears only once all layers are written.
    """
    target = Path(path)
    for name, frame in layers.items():
        if frame.crs is None:
            raise ValueError(f"{target}: layer {name!r} has no CRS")
    with atomic_file(target) as tmp:
        for name, frame in layers.items():
            frame.to_file(tmp, layer=name, driver="GPKG", engine="pyogrio")
    return target
