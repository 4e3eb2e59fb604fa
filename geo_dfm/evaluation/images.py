"""Benchmark image files decoded and resized in background threads, ready for the encoder.

Each image is read with Pillow, converted to RGB and brought to the model input (bicubic resize of the
short side + centre crop, :func:`geo_dfm.models.encoder.resize_short_side_and_crop`) in the reader
threads of :func:`tile_tools.prefetch.iter_chip_batches`, so the encoder's own preprocessing has only
the normalisation left. Memory: ``batch_size × (prefetch + 1)`` model-sized images.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from geo_dfm.models.encoder import resize_short_side_and_crop
from tile_tools.errors import InputError


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as H×W×3 uint8; an unreadable or corrupt file is an :class:`InputError`."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(path, f"cannot read the image: {exc}") from exc


class _ModelInputFiles:
    """A "reader" for :func:`tile_tools.prefetch.iter_chip_batches` whose items are image paths."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read_chip(self, path: Path) -> np.ndarray:
        return resize_short_side_and_crop(load_rgb(path), self.size)


def iter_image_batches(
    files: Sequence[Path], size: int, batch_size: int, workers: int = 2
) -> Iterator[list[np.ndarray]]:
    """``size``×``size``×3 uint8 model inputs of ``files``, in order, in lists of ``batch_size``."""
    from tile_tools.prefetch import iter_chip_batches

    batches = iter_chip_batches(_ModelInputFiles(size), list(files), batch_size, workers=workers)
    with contextlib.closing(batches):  # an early stop ends the reader threads here
        yield from batches
