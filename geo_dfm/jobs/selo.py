"""The reference SeLo crop preparation (selo.md §1).

Each crop is resized to 256×256 (bicubic) before the model's own preprocessing. The reference also
writes every crop to JPEG (quality 95) and reads it back; ``exact=True`` reproduces that round trip
(:func:`tile_tools.postprocess.jpeg_round_trip`; the final map's round trip is the stitcher's).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from tile_tools.chip import Chip
from tile_tools.postprocess import jpeg_round_trip

SELO_CROP_SIZE = 256


def selo_crop(image: np.ndarray, exact: bool = False) -> np.ndarray:
    """A SeLo crop as the reference feeds it to the model: (JPEG round trip,) bicubic 256×256."""
    if exact:
        image = jpeg_round_trip(image)
    resized = Image.fromarray(image).resize((SELO_CROP_SIZE, SELO_CROP_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(resized)


def selo_preparer(exact: bool) -> Callable[[Chip], np.ndarray]:
    """``prepare(chip)`` for :func:`geo_dfm.jobs.pipeline.iter_features`."""

    def prepare(chip: Chip) -> np.ndarray:
        return selo_crop(chip.image, exact)

    return prepare
