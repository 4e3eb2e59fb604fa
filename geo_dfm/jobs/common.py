"""What every job does first: check the output, load the model, plan the chips, encode them once.

Chips are read (and prepared, e.g. resized) in background threads by
:func:`tile_tools.prefetch.iter_chip_batches` while the model encodes the previous batch. Each
window is encoded once per run; the resulting (N, D) embeddings are shared by every query or
class of the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from geo_dfm.jobs.params import ChipParams, ModelParams
from geo_dfm.progress import Progress
from tile_tools.chip import Chip
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

log = logging.getLogger(__name__)

PrepareImage = Callable[[Chip], np.ndarray]


def check_output_free(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an existing output (before any work) unless ``overwrite``; returns the absolute path."""
    target = Path(path).expanduser().absolute()
    if target.exists() and not overwrite:
        kind = "folder" if target.is_dir() else "file"
        raise InputError(target, f"output {kind} exists (use --overwrite to replace it)")
    return target


def check_scene(path: str | os.PathLike[str]) -> Path:
    """An existing scene path, absolute (URLs and GDAL virtual paths pass unchanged)."""
    from tile_tools.reader import is_virtual_source

    text = str(path)
    if is_virtual_source(text):
        return Path(text)
    scene = Path(text).expanduser()
    if not scene.exists():
        raise InputError(path, "scene file not found")
    return scene.absolute()


def check_queries(queries: tuple[str, ...]) -> tuple[str, ...]:
    """Queries are used verbatim; an empty (or blank) one is an :class:`InputError`."""
    if not queries:
        raise InputError("QUERY", "give at least one query text")
    for query in queries:
        if not query.strip():
            raise InputError("QUERY", "empty query text")
    return tuple(queries)


def load_job_encoder(model: ModelParams) -> Any:
    """Load the encoder ``model`` names (cached per process by the factory)."""
    from geo_dfm.models.factory import load_encoder

    return load_encoder(
        model=model.name,
        weights=model.weights,
        model_config=model.model_config,
        adapter=model.adapter,
        device=model.device,
        precision=model.precision,
        threads=model.threads,
    )


def model_summary(encoder: Any) -> dict[str, Any]:
    """``model`` entry of a summary: name, architecture, weights source, embedding size."""
    return dict(encoder.describe())


def model_input_size(encoder: Any) -> int:
    """The model's input size in pixels (the default chip size)."""
    return int(encoder.input_size)


def open_chip_plan(
    scene: str | os.PathLike[str], chips: ChipParams, default_size: int, layout: str = "regular"
):
    """Open the scene and plan its windows (:func:`tile_tools.grid.plan_chips`)."""
    from tile_tools.grid import plan_chips

    plan = plan_chips(scene, default_size=default_size, layout=layout, **chips.as_dict())
    unique = list(dict.fromkeys(window_key(w) for w in plan.windows))
    if len(unique) != len(plan.windows):  # equal scales or overlapping layouts: encode each once
        windows = [Window(*key) for key in unique]
        plan = dataclasses.replace(plan, windows=windows)
    return plan


def window_key(window: Window) -> tuple[int, int, int, int]:
    """``(col_off, row_off, width, height)`` as integers."""
    return int(window.col_off), int(window.row_off), int(window.width), int(window.height)


class _PreparingReader:
    """A reader whose chips come with ``prepare(chip)`` as their image (run in the reader threads)."""

    def __init__(self, reader: Any, prepare: PrepareImage) -> None:
        self._reader, self._prepare = reader, prepare

    def read_chip(self, window: Window) -> Chip:
        chip = self._reader.read_chip(window)
        return dataclasses.replace(chip, image=self._prepare(chip))


def encode_windows(
    reader: Any,
    windows: Sequence[Window],
    encoder: Any,
    batch_size: int,
    progress: Progress,
    prepare: PrepareImage | None = None,
    stage: str = "encode images",
) -> np.ndarray:
    """(N, D) float32 L2-normalised image embeddings of ``windows`` (in order), each encoded once."""
    from tile_tools.prefetch import iter_chip_batches

    source = reader if prepare is None else _PreparingReader(reader, prepare)
    progress.stage(stage, total=len(windows))
    parts: list[np.ndarray] = []
    # closing(): a cancelled job stops the reader threads here, before its caller closes the dataset
    with contextlib.closing(iter_chip_batches(source, windows, batch_size)) as batches:
        for batch in batches:
            images = [chip.image for chip in batch]
            parts.append(np.asarray(encoder.encode_images(images, batch_size=len(images)), dtype=np.float32))
            progress.advance(len(batch))
    return np.concatenate(parts, axis=0)


def valid_mask_on(reader: Any, grid: PixelGrid) -> np.ndarray:
    """The scene's valid-data mask sampled at the pixel centres of ``grid`` (the working grid or a
    decimated version of it)."""
    mask, row_scale, col_scale = reader.valid_mask_overview()
    factor = decimation_of(reader.grid, grid)
    rows = ((np.arange(grid.height) + 0.5) * factor / row_scale).astype(np.intp)
    cols = ((np.arange(grid.width) + 0.5) * factor / col_scale).astype(np.intp)
    rows = np.minimum(rows, mask.shape[0] - 1)
    cols = np.minimum(cols, mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


def auto_decimation(grid: PixelGrid, requested: int | None, max_values: int, channels: int = 1) -> int:
    """``requested``, or the smallest factor keeping output pixels × ``channels`` under ``max_values``."""
    if requested is not None:
        return requested
    values = grid.width * grid.height * channels
    return max(1, math.ceil(math.sqrt(values / max_values)))


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


def text_embeddings(encoder: Any, texts: Sequence[str]) -> np.ndarray:
    """(Q, D) float32 L2-normalised text embeddings."""
    return np.asarray(encoder.encode_texts(list(texts)), dtype=np.float32)
