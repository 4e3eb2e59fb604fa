"""Decoding the images of training pairs into H×W×3 uint8 arrays (files or bytes from a tar shard).

JPEG/PNG/WebP/BMP go through Pillow; TIFF/GeoTIFF (the chips ``geo-dfm pairs`` writes), JPEG 2000 and
VRT through rasterio. One band is repeated to grey; of more bands the first three are RGB. Anything
that cannot be decoded raises :class:`geo_dfm.training.UnreadableImage` naming the file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from geo_dfm.training.data import UnreadableImage

PIL_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".jp2", ".vrt"})
IMAGE_SUFFIXES = PIL_SUFFIXES | RASTER_SUFFIXES


def is_image_name(name: str) -> bool:
    """True when ``name`` ends in a suffix geo-dfm decodes."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The image file at ``path`` as H×W×3 uint8."""
    path = Path(path)
    if path.suffix.lower() in RASTER_SUFFIXES:
        return _raster(str(path), path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UnreadableImage(path, f"cannot read the image ({exc.strerror or exc})") from None
    return decode_image(data, path)


def decode_image(data: bytes, source: str | os.PathLike[str]) -> np.ndarray:
    """Encoded image bytes (named ``source`` for messages and the format) as H×W×3 uint8."""
    if Path(str(source)).suffix.lower() in RASTER_SUFFIXES:
        from rasterio.io import MemoryFile

        try:
            with MemoryFile(data) as memory:
                return _raster(memory.name, source)
        except UnreadableImage:
            raise
        except Exception as exc:
            raise UnreadableImage(source, f"cannot decode the image ({_first_line(exc)})") from None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            array = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(source, f"cannot decode the image ({_first_line(exc)})") from None
    return _checked(array, source)


def _raster(name: str, source: str | os.PathLike[str]) -> np.ndarray:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(name) as src:
            if src.count < 1 or src.dtypes[0] != "uint8":
                raise UnreadableImage(source, f"training images must be 8-bit, got {src.dtypes[0]}")
            bands = [1, 1, 1] if src.count < 3 else [1, 2, 3]
            array = np.moveaxis(src.read(bands), 0, -1)
    except UnreadableImage:
        raise
    except (RasterioError, OSError, ValueError) as exc:
        raise UnreadableImage(source, f"cannot decode the image ({_first_line(exc)})") from None
    return _checked(np.ascontiguousarray(array), source)


def _checked(array: np.ndarray, source: str | os.PathLike[str]) -> np.ndarray:
    if array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape[:2]:
        raise UnreadableImage(source, f"decoded to an unusable shape {array.shape}")
    return array


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
