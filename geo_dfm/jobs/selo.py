"""The reference SeLo crop preparation and the exact mode's JPEG round trips (selo.md §1).

Each crop is resized to 256×256 (bicubic) before the model's own preprocessing. The reference
also writes every crop, and the final map ``g``, to JPEG (quality 95) and reads them back;
``exact=True`` reproduces those round trips (Pillow's libjpeg, 4:2:0 subsampling for colour).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tile_tools.chip import Chip

SELO_CROP_SIZE = 256
SELO_JPEG_QUALITY = 95


def jpeg_round_trip(image: np.ndarray, quality: int = SELO_JPEG_QUALITY) -> np.ndarray:
    """Encode ``image`` (H×W×3 or H×W uint8) as JPEG and decode it again."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("L" if image.ndim == 2 else "RGB"))


def selo_crop(image: np.ndarray, exact: bool = False) -> np.ndarray:
    """A SeLo crop as the reference feeds it to the model: (JPEG round trip,) bicubic 256×256."""
    if exact:
        image = jpeg_round_trip(image)
    resized = Image.fromarray(image).resize((SELO_CROP_SIZE, SELO_CROP_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(resized)


def selo_preparer(exact: bool):
    """``prepare(chip)`` for :func:`geo_dfm.jobs.common.encode_windows`."""

    def prepare(chip: Chip) -> np.ndarray:
        return selo_crop(chip.image, exact)

    return prepare


def selo_map_round_trip(probability: np.ndarray) -> np.ndarray:
    """The exact mode's JPEG round trip of ``g = 255·p`` (p = SeLo map in [0, 1], NaN = nodata)."""
    valid = np.isfinite(probability)
    g = np.rint(np.where(valid, probability, 0.0) * 255.0).astype(np.uint8)
    result = jpeg_round_trip(g).astype(np.float32) / np.float32(255.0)
    result[~valid] = np.nan
    return result
