"""Scene inputs of a batch run → an ordered list of :class:`SceneRef` s with stable, folder-safe ids.

An input is one of:

- a raster path (must exist) or a GDAL virtual path / URL (``/vsicurl/…``, ``/vsis3/…``, ``https://…``,
  ``s3://…``: passed to GDAL verbatim, never checked on disk);
- a glob (``tiles/*.tif``, ``**`` recursive), expanded in sorted order (matching nothing is an error);
- a folder: its raster files (``.tif``, ``.tiff``, ``.vrt``, ``.jp2``, ``.img``; not its subfolders) in sorted
  order, none is an error; a slippy-map tile folder (``z/x/y.png``) is one scene;
- a text file (``.txt``, ``.lst``, ``.list``): one path or URL per line, blank lines and ``#`` comments
  ignored, relative paths taken from the list file's folder (a missing listed file fails that scene only);
- a STAC ``ItemCollection`` (or single ``Item``) JSON (``.json``, ``.geojson``): one scene per item, the
  ``asset`` key's ``href`` (relative hrefs from the JSON's folder); without ``asset``: ``visual`` when every
  item has it, else the one GeoTIFF/JP2 asset each item has.

Ids are the file stem (or STAC item id) slugified and made unique in input order (``a``, ``a_2``), so the
same inputs always give the same ids (what ``--resume`` relies on). A source given twice counts once.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from geo_dfm.jobs.naming import unique_slugs
from geo_dfm.jobs.pipeline import is_slippy_folder
from tile_tools.errors import InputError
from tile_tools.reader import is_virtual_source

LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
STAC_SUFFIXES = frozenset({".json", ".geojson"})
#: What a folder given as a scene source contributes (in sorted order).
FOLDER_RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
_GLOB_CHARS = frozenset("*?[")
_VSI_PREFIX = re.compile(r"^/vsi[a-z0-9_]+/")
_RASTER_MEDIA = ("image/tiff", "image/jp2", "geotiff", "cloud-optimized")


@dataclass(frozen=True)
class SceneRef:
    """One scene of a run: ``id`` (folder-safe, unique in the run), ``source`` (what GDAL opens)."""

    id: str
    source: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "source": self.source}


def resolve_scenes(inputs: Sequence[str], asset: str | None = None) -> list[SceneRef]:
    """The scenes ``inputs`` name, in order, each once (see the module docstring)."""
    if isinstance(inputs, str):
        raise ValueError("inputs must be a sequence of strings, not one string")
    sources = list(dict.fromkeys(source for item in inputs for source in _expand(str(item), asset)))
    if not sources:
        raise InputError("scenes", "no scene given")
    names = [name for name, _ in sources]
    return [
        SceneRef(scene_id, source) for scene_id, (_, source) in zip(unique_slugs(names), sources, strict=True)
    ]


def _expand(item: str, asset: str | None) -> Iterator[tuple[str, str]]:
    """``(name, source)`` pairs for one input."""
    if not item.strip():
        raise InputError("scenes", "empty scene path")
    if is_virtual_source(item):
        yield _name_of(item), item
        return
    path = Path(item).expanduser()
    if not path.exists() and _GLOB_CHARS & set(item):
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise InputError(item, "the pattern matches no file")
        for match in matches:
            yield from _expand(match, asset)
        return
    if not path.exists():
        raise InputError(item, "scene file not found")
    if path.is_dir() and not is_slippy_folder(path):
        rasters = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FOLDER_RASTER_SUFFIXES
        )
        if not rasters:
            raise InputError(item, f"the folder holds no raster file ({', '.join(FOLDER_RASTER_SUFFIXES)})")
        for raster in rasters:
            yield _name_of(str(raster)), str(raster.absolute())
        return
    suffix = path.suffix.lower()
    if path.is_file() and suffix in LIST_SUFFIXES:
        yield from _read_list(path)
    elif path.is_file() and suffix in STAC_SUFFIXES:
        yield from _read_stac(path, asset)
    else:
        yield _name_of(str(path)), str(path.absolute())


def _name_of(source: str) -> str:
    """The file stem of a path or URL (``/vsicurl/https://h/x/scene.tif?sig=…`` → ``scene``)."""
    text = source
    while _VSI_PREFIX.match(text):
        text = _VSI_PREFIX.sub("", text, count=1)
    parsed = urlparse(text)
    stem = PurePosixPath(parsed.path if parsed.scheme else text).stem
    return stem or "scene"


def _read_list(path: Path) -> Iterator[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the scene list ({exc})") from None
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if is_virtual_source(line):
            yield _name_of(line), line
        else:
            local = Path(line).expanduser()
            resolved = local if local.is_absolute() else path.parent / local
            yield _name_of(line), str(resolved.absolute())


def _read_stac(path: Path, asset: str | None) -> Iterator[tuple[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(path, f"cannot read the STAC JSON ({exc})") from None
    items = _stac_items(data, path)
    key = asset or _default_asset(items, path)
    for item in items:
        item_id = str(item.get("id") or "item")
        assets = item.get("assets") or {}
        if key not in assets:
            raise InputError(
                path, f"STAC item {item_id!r} has no asset {key!r} (it has: {', '.join(sorted(assets))})"
            )
        href = assets[key].get("href") if isinstance(assets[key], dict) else None
        if not href:
            raise InputError(path, f"STAC item {item_id!r}: asset {key!r} has no href")
        yield item_id, _resolve_href(str(href), path)


def _stac_items(data: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        items = data.get("features")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        items = [data]
    else:
        raise InputError(path, "not a STAC ItemCollection or Item (no FeatureCollection/Feature type)")
    if not isinstance(items, list) or not all(isinstance(i, dict) and "assets" in i for i in items):
        raise InputError(path, "not a STAC ItemCollection: every feature needs 'assets'")
    if not items:
        raise InputError(path, "the STAC ItemCollection has no items")
    return items


def _default_asset(items: Iterable[dict[str, Any]], path: Path) -> str:
    items = list(items)
    if all("visual" in item["assets"] for item in items):
        return "visual"
    keys: set[str] = set()
    for item in items:
        rasters = [
            name
            for name, entry in item["assets"].items()
            if isinstance(entry, dict) and any(m in str(entry.get("type", "")).lower() for m in _RASTER_MEDIA)
        ]
        if len(rasters) != 1:
            names = ", ".join(sorted(item["assets"]))
            raise InputError(
                "asset", f"{path}: choose the STAC asset to annotate (item {item.get('id')!r} has: {names})"
            )
        keys.add(rasters[0])
    if len(keys) != 1:
        raise InputError("asset", f"{path}: the items' raster assets differ ({', '.join(sorted(keys))})")
    return keys.pop()


def _resolve_href(href: str, stac_file: Path) -> str:
    if href.startswith("file://"):
        return urlparse(href).path
    if is_virtual_source(href) or os.path.isabs(href):
        return href
    return str((stac_file.parent / href).absolute())
