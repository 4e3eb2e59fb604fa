"""QGIS really runs headless in the test environment: load a GeoTIFF the test writes."""

from __future__ import annotations

import numpy as np
import pytest
import qgis.core as qgis_core  # the plugin conftest skips this folder when QGIS is optional and missing
import rasterio
from rasterio.transform import from_origin

pytestmark = pytest.mark.qgis


def test_qgis_loads_a_geotiff(qgis_app, tmp_path):
    path = tmp_path / "scene.tif"
    transform = from_origin(500000.0, 4650000.0, 10.0, 10.0)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=64,
        height=32,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=transform,
    ) as dst:
        dst.write(np.random.default_rng(0).integers(0, 255, (3, 32, 64), dtype=np.uint8))
    layer = qgis_core.QgsRasterLayer(str(path), "scene")
    assert layer.isValid()
    assert layer.crs().authid() == "EPSG:32633"
    assert (layer.width(), layer.height(), layer.bandCount()) == (64, 32, 3)
    extent = layer.extent()
    assert extent.xMinimum() == pytest.approx(500000.0)
    assert extent.yMaximum() == pytest.approx(4650000.0)
    assert qgis_core.QgsProviderRegistry.instance().providerList().count("gdal") == 1
