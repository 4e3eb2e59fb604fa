"""The job summary (``summary.json``): what ran, with which model and parameters, what it wrote.

The fields every summary carries are fixed by ``docs/architecture.md`` (``Job outputs``):
``command``, ``version``, ``model``, ``parameters``, ``timings``, ``crs``, ``outputs``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rasterio.crs import CRS

from geo_dfm import __version__
from tile_tools.atomic import atomic_file
from tile_tools.pixel_grid import PixelGrid


class StageTimer:
    """Wall-clock seconds per named stage (a stage may be entered several times)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in self.seconds.items()}


def crs_text(crs: CRS | None) -> str | None:
    """``"EPSG:32633"`` when the CRS has an EPSG code, its WKT otherwise."""
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def grid_summary(grid: PixelGrid) -> dict[str, Any]:
    """Size, resolution and GDAL-order geotransform of an output grid."""
    return {
        "width": grid.width,
        "height": grid.height,
        "res": list(grid.res),
        "geotransform": list(grid.transform.to_gdal()),
    }


def make_summary(
    command: str,
    model: Mapping[str, Any] | None,
    parameters: Mapping[str, Any],
    timings: StageTimer,
    crs: CRS | None,
    outputs: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A summary dict with the contract's fields, plus command-specific ``extra`` fields
    (``model`` is ``None`` for jobs that use no model, e.g. ``chips``)."""
    return {
        "command": command,
        "version": __version__,
        "model": None if model is None else dict(model),
        "parameters": dict(parameters),
        "timings": timings.as_dict(),
        "crs": crs_text(crs),
        "outputs": dict(outputs),
        **extra,
    }


def write_summary(summary: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``summary`` as indented JSON, atomically."""
    target = Path(path)
    with atomic_file(target) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return target
