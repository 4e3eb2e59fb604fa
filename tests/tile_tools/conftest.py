"""Fixtures for tile_tools tests: small synthetic GeoTIFFs written with rasterio in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

UTM32 = "EPSG:32632"


def write_scene(
    path: Path,
    data: np.ndarray,
    crs: str | None = UTM32,
    transform=None,
    nodata: float | None = None,
    photometric: str | None = None,
    **profile,
) -> Path:
    """Write ``data`` (bands×H×W) as a GeoTIFF; default: 10 m pixels in UTM 32N."""
    count, height, width = data.shape
    options = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=count,
        dtype=data.dtype.name,
        transform=transform if transform is not None else from_origin(500000.0, 5600000.0, 10.0, 10.0),
        nodata=nodata,
        **profile,
    )
    if crs is not None:
        options["crs"] = crs
    if photometric:
        options["photometric"] = photometric
    with rasterio.open(path, "w", **options) as dst:
        dst.write(data)
    return path


@pytest.fixture
def make_scene(tmp_path):
    """``make_scene(data, name="scene.tif", **write_scene options) -> Path``."""
    counter = iter(range(1_000_000))

    def make(data: np.ndarray, name: str | None = None, **options) -> Path:
        return write_scene(tmp_path / (name or f"scene{next(counter)}.tif"), data, **options)

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
