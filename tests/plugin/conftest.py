"""Fixtures for the QGIS plugin tests: the plugin package on sys.path, geo-dfm chosen in settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_ROOT = REPO_ROOT / "qgis_plugin"
QGIS_PYTHON_PLUGINS = Path("/usr/share/qgis/python/plugins")  # Processing lives here (Debian)
GEO_DFM = Path(sys.executable).parent / "geo-dfm"

for path in (PLUGIN_ROOT, QGIS_PYTHON_PLUGINS):
    if path.is_dir() and str(path) not in sys.path:
        sys.path.insert(0, str(path))

if os.environ.get("GEO_DFM_REQUIRE_QGIS"):  # make test / CI: a missing QGIS fails, never skips
    import qgis.core  # noqa: F401
else:
    pytest.importorskip("qgis.core", reason="python3-qgis is not installed (make test installs it)")


@pytest.fixture
def plugin_settings(qgis_app, tmp_path):
    """geo-dfm from this venv chosen in the plugin settings; output under tmp_path; cleaned up after."""
    from qgis.core import QgsSettings

    if not GEO_DFM.exists():
        if os.environ.get("GEO_DFM_REQUIRE_QGIS"):
            pytest.fail(f"{GEO_DFM} is not installed")
        pytest.skip(f"{GEO_DFM} is not installed")
    settings = QgsSettings()
    settings.remove("geo_dfm_qgis")
    settings.setValue("geo_dfm_qgis/environment", str(GEO_DFM))
    settings.setValue("geo_dfm_qgis/output_folder", str(tmp_path / "runs"))
    yield settings
    settings.remove("geo_dfm_qgis")


@pytest.fixture
def small_scene(tmp_path) -> Path:
    """A 96×64 RGB GeoTIFF in UTM 33N (for tests that do not need a meaningful picture)."""
    import rasterio
    from affine import Affine

    path = tmp_path / "small.tif"
    data = np.random.default_rng(0).integers(0, 255, (3, 64, 96), dtype=np.uint8)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=96,
        height=64,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine.translation(500000.0, 4650000.0) @ Affine.scale(10.0, -10.0),
    ) as dst:
        dst.write(data)
    return path


@pytest.fixture
def wait_until(qgis_app):
    """``wait_until(condition, timeout)``: process Qt events until ``condition()`` holds."""
    import time

    from qgis.PyQt.QtCore import QCoreApplication

    def wait(condition, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s")
            QCoreApplication.processEvents()
            time.sleep(0.02)

    return wait
