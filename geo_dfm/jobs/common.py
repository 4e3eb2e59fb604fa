"""Transitional names kept for job modules written before the spine (:mod:`geo_dfm.jobs.pipeline`).

New code imports from :mod:`geo_dfm.jobs.pipeline`; this module goes once every job does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rasterio.windows import Window

from geo_dfm.jobs.pipeline import (
    check_queries,
    check_scene,
    load_job_encoder,
    open_chip_plan,
    window_key,
)
from geo_dfm.jobs.pipeline import output_target as check_output_free
from geo_dfm.jobs.stitch import auto_decimation
from tile_tools.pixel_grid import PixelGrid


def decimation_of(working: PixelGrid, grid: PixelGrid) -> int:
    """The factor ``f`` with ``grid == working.decimated(f)``."""
    return max(1, round(grid.res[0] / working.res[0]))


def scene_image_on(reader: Any, grid: PixelGrid, max_read_pixels: int = 16_000_000) -> np.ndarray:
    """The scene's 8-bit RGB (H×W×3) on ``grid`` (the working grid or a decimated version of it,
    one sample per output pixel), read in strips so memory stays bounded."""
    working = reader.grid
    factor = decimation_of(working, grid)
    out = np.zeros((grid.height, grid.width, 3), np.uint8)
    src_rows = np.minimum(np.arange(grid.height) * factor + factor // 2, working.height - 1)
    src_cols = np.minimum(np.arange(grid.width) * factor + factor // 2, working.width - 1)
    strip = max(1, max_read_pixels // max(1, working.width))
    for start in range(0, working.height, strip):
        stop = min(start + strip, working.height)
        wanted = np.flatnonzero((src_rows >= start) & (src_rows < stop))
        if wanted.size == 0:
            continue
        chip = reader.read_chip(Window(0, start, working.width, stop - start))
        out[wanted] = chip.image[src_rows[wanted] - start][:, src_cols]
    return out


__all__ = [
    "auto_decimation",
    "check_output_free",
    "check_queries",
    "check_scene",
    "load_job_encoder",
    "open_chip_plan",
    "scene_image_on",
    "window_key",
]
