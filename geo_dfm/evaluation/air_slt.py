"""AIR-SLT, the semantic-localization benchmark: ``anno.json`` samples (caption, image, polygons).

A folder holds ``annotations/anno.json`` (or ``anno.json``) and the images in ``imgs/`` (or beside the
annotations). Each entry is ``{"caption": str, "jpg_name": "N.jpg", "points": [[[x, y], ...], ...]}``
with pixel coordinates; sample ``i`` is the ``i``-th entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tile_tools.errors import InputError

Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class SeloSample:
    """One AIR-SLT sample: ``regions`` are polygons of ``(x, y)`` pixel vertices in ``image``."""

    index: int
    image: Path
    caption: str
    regions: tuple[Polygon, ...]


def find_annotations(root: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(anno.json, images folder)`` of an AIR-SLT folder."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise InputError(folder, "AIR-SLT folder not found")
    for anno in (folder / "annotations" / "anno.json", folder / "anno.json"):
        if anno.is_file():
            images = folder / "imgs"
            return anno, images if images.is_dir() else anno.parent
    raise InputError(
        folder, "no annotations/anno.json (the AIR-SLT layout: annotations/anno.json, imgs/N.jpg)"
    )


def read_air_slt(root: str | os.PathLike[str]) -> tuple[SeloSample, ...]:
    """Every sample of an AIR-SLT folder, checked (images are checked by whoever reads them)."""
    annotations, images = find_annotations(root)
    try:
        entries = json.loads(annotations.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(annotations, f"cannot read the annotations: {exc}") from exc
    if not isinstance(entries, list) or not entries:
        raise InputError(annotations, "expected a non-empty list of {caption, jpg_name, points} entries")
    return tuple(_sample(annotations, images, index, entry) for index, entry in enumerate(entries))


def _sample(annotations: Path, images: Path, index: int, entry: object) -> SeloSample:
    where = f"entry {index}"
    if not isinstance(entry, dict):
        raise InputError(annotations, f"{where} is not an object")
    caption, name, points = entry.get("caption"), entry.get("jpg_name"), entry.get("points")
    if not isinstance(caption, str) or not caption.strip():
        raise InputError(annotations, f"{where}: 'caption' must be a non-empty text")
    if not isinstance(name, str) or not name:
        raise InputError(annotations, f"{where}: 'jpg_name' must name an image")
    if not isinstance(points, list) or not points:
        raise InputError(annotations, f"{where}: 'points' must be a list of polygons")
    regions = []
    for number, polygon in enumerate(points):
        try:
            vertices = tuple((float(x), float(y)) for x, y in polygon)
        except (TypeError, ValueError) as exc:
            raise InputError(
                annotations, f"{where}: polygon {number} is not a list of [x, y] points"
            ) from exc
        if not vertices:
            raise InputError(annotations, f"{where}: polygon {number} has no points")
        regions.append(vertices)
    return SeloSample(index, (images / name).absolute(), caption, tuple(regions))
