"""Fixtures for the QGIS plugin tests: the plugin package on sys.path, the geo-dfm under test chosen
in the plugin settings.

The plugin starts geo-dfm with QGIS's Python variables removed (PYTHONPATH included), so an installed
``geo-dfm`` executable could run another checkout than the one under test. The tests therefore run
geo-dfm through a launcher that puts this checkout first on ``sys.path`` (:data:`GEO_DFM`), whatever
the environment says. ``GEO_DFM_QGIS_PLUGIN_ROOT`` points the tests at another copy of the plugin
(an unzipped release, an older revision).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_ROOT = Path(os.environ.get("GEO_DFM_QGIS_PLUGIN_ROOT") or REPO_ROOT / "qgis_plugin")
QGIS_PYTHON_PLUGINS = Path("/usr/share/qgis/python/plugins")  # Processing lives here (Debian)

#: Python code that makes this checkout's geo_dfm and tile_tools win over any installed copy.
CHECKOUT_FIRST = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n"


def write_launcher(folder: Path) -> Path:
    """An executable ``folder/geo-dfm`` that runs this checkout's CLI with this test's Python."""
    folder.mkdir(parents=True, exist_ok=True)
    launcher = folder / "geo-dfm"
    launcher.write_text(
        f"#!{sys.executable}\n{CHECKOUT_FIRST}from geo_dfm.cli.main import main\nsys.exit(main())\n",
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    return launcher


_LAUNCHER_DIR = Path(tempfile.mkdtemp(prefix="geo-dfm-under-test-"))
atexit.register(shutil.rmtree, _LAUNCHER_DIR, True)
GEO_DFM = write_launcher(_LAUNCHER_DIR)


@dataclass(frozen=True)
class GeoDfmUnderTest:
    """The launcher the plugin tests choose as geo-dfm, and the code it puts first on ``sys.path``."""

    launcher: Path
    preamble: str
    repo_root: Path


for path in (PLUGIN_ROOT, QGIS_PYTHON_PLUGINS):
    if path.is_dir() and str(path) not in sys.path:
        sys.path.insert(0, str(path))

if os.environ.get("GEO_DFM_REQUIRE_QGIS"):  # make test / CI: a missing QGIS fails, never skips
    import qgis.core  # noqa: F401
else:
    pytest.importorskip("qgis.core", reason="python3-qgis is not installed (make test installs it)")


@pytest.fixture(scope="session")
def geo_dfm_under_test() -> GeoDfmUnderTest:
    return GeoDfmUnderTest(GEO_DFM, CHECKOUT_FIRST, REPO_ROOT)


@pytest.fixture
def plugin_settings(qgis_app, tmp_path):
    """The geo-dfm under test chosen in the plugin settings; output under tmp_path; cleaned up after."""
    from qgis.core import QgsSettings

    settings = QgsSettings()
    settings.remove("geo_dfm_qgis")
    settings.setValue("geo_dfm_qgis/environment", str(GEO_DFM))
    settings.setValue("geo_dfm_qgis/output_folder", str(tmp_path / "runs"))
    yield settings
    settings.remove("geo_dfm_qgis")


@pytest.fixture(scope="session")
def workers():
    """One geo-dfm worker for the whole plugin suite, as the plugin keeps one per QGIS session (its
    start, about 10 s on two shared cores, is paid once)."""
    from geo_dfm_qgis.task import WorkerHolder

    holder = WorkerHolder()
    yield holder
    holder.shutdown()


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


@pytest.fixture
def dock(qgis_app, qgis_iface, qgis_new_project, plugin_settings, workers):
    from geo_dfm_qgis.dock import GeoDfmDock

    panel = GeoDfmDock(qgis_iface, workers)
    panel.resize(400, 860)
    panel.show()  # offscreen: laid out and clickable like a docked panel
    yield panel
    for task in (panel.task, panel.download_task):
        if task is not None:
            task.cancel()
    panel.deleteLater()


@pytest.fixture
def worker_capabilities(dock, workers):
    """The panel fed with what the running geo-dfm worker reports (protocol 2: presets, models)."""
    client = workers.client()
    client.start()
    dock.on_capabilities(client.capabilities)
    return client.capabilities
