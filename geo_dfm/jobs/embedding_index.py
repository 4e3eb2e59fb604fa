"""A reusable store of chip embeddings (a folder) so later searches encode no image again.

One index folder holds entries for many scenes: a manifest ``index.json`` (which marks the folder as a
geo-dfm index; any other existing path is refused, never replaced) and per entry two ``.npy`` files,
the (N, 4) int64 windows and the (N, D) float32 embeddings. An entry is keyed by everything its
embeddings depend on: the scene file (absolute path, size, modification time), the model identity and
the chip parameters. A changed scene file, model or chip setting gives a new key, and the stale entry
of the same scene/model/chips is dropped when the new one is stored.

Entries stream: :meth:`EmbeddingIndex.writer` appends batches to a memory-mapped temporary ``.npy``
of the planned size and commits it (rename, then the manifest, both atomic); :meth:`get` maps the
arrays read-only. Memory stays O(batch) whatever the number of chips.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from tile_tools.atomic import atomic_file
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

log = logging.getLogger(__name__)

INDEX_DIR_NAME = "geo-dfm-embeddings"
MANIFEST_NAME = "index.json"
INDEX_FORMAT = "geo-dfm-embedding-index"
INDEX_VERSION = 2


@dataclass(frozen=True)
class SceneEmbeddings:
    """The embeddings of one scene's chips: ``windows`` (N, 4) int64 ``col_off, row_off, width,
    height`` in ``grid`` (the scene's working grid), ``embeddings`` (N, D) float32 L2-normalised
    (memory-mapped when read from an index)."""

    scene: str
    grid: PixelGrid
    windows: np.ndarray
    embeddings: np.ndarray

    def __len__(self) -> int:
        return len(self.windows)


def scene_stamp(scene: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a scene file's content cheaply: absolute path, size, mtime (ns); a GDAL virtual
    path (URL, ``/vsi…``) is identified by its text alone."""
    from tile_tools.reader import is_virtual_source

    text = os.fspath(scene)
    if is_virtual_source(text):
        return {"path": text}
    path = Path(text).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _digest(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class IndexKey:
    """Key of one entry: ``setup`` (model + chips) and ``stamp`` (the scene file)."""

    stamp: Mapping[str, Any]
    setup: Mapping[str, Any]

    @property
    def setup_digest(self) -> str:
        return _digest({"scene": self.stamp["path"], "setup": self.setup})

    @property
    def digest(self) -> str:
        return _digest({"stamp": self.stamp, "setup": self.setup})


def is_embedding_index(path: Path) -> bool:
    """True when ``path`` is a folder with a geo-dfm index manifest."""
    manifest = path / MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == INDEX_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class EntryWriter:
    """Appends one scene's embeddings batch by batch; :meth:`commit` stores the entry."""

    def __init__(
        self, index: EmbeddingIndex, key: IndexKey, scene: str, grid: PixelGrid, windows: np.ndarray, dim: int
    ):
        self._index, self._key, self._scene, self._grid = index, key, scene, grid
        self._windows = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
        self._tmp = index.path / f".{key.digest}.embeddings.tmp.npy"
        self._array = open_memmap(self._tmp, mode="w+", dtype=np.float32, shape=(len(self._windows), dim))
        self._filled = 0

    def append(self, embeddings: np.ndarray) -> None:
        n = len(embeddings)
        self._array[self._filled : self._filled + n] = embeddings
        self._filled += n

    def commit(self) -> SceneEmbeddings:
        if self._filled != len(self._windows):
            raise ValueError(f"{self._scene}: {self._filled} embeddings for {len(self._windows)} windows")
        self._array.flush()
        del self._array
        return self._index._store(self._key, self._scene, self._grid, self._windows, self._tmp)

    def discard(self) -> None:
        self._array = None  # type: ignore[assignment]
        self._tmp.unlink(missing_ok=True)


class EmbeddingIndex:
    """The entries of one index folder (created on first store)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            if not self.path.is_dir() or not is_embedding_index(self.path):
                raise InputError(
                    self.path,
                    "exists and is not a geo-dfm embedding index (it is never replaced); give another index path",
                )
            self._load()

    def _load(self) -> None:
        manifest = json.loads((self.path / MANIFEST_NAME).read_text(encoding="utf-8"))
        if manifest.get("version") != INDEX_VERSION:
            log.warning("%s: index version %s; it will be rebuilt", self.path, manifest.get("version"))
            return
        entries = manifest.get("entries", {})
        self._entries = {
            digest: entry
            for digest, entry in entries.items()
            if (self.path / entry["embeddings"]).is_file() and (self.path / entry["windows"]).is_file()
        }

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: IndexKey) -> SceneEmbeddings | None:
        entry = self._entries.get(key.digest)
        if entry is None:
            return None
        try:
            embeddings = np.load(self.path / entry["embeddings"], mmap_mode="r", allow_pickle=False)
            windows = np.load(self.path / entry["windows"], allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning(
                "%s: unreadable entry for %s (%s); it will be re-encoded", self.path, entry["scene"], exc
            )
            return None
        return SceneEmbeddings(entry["scene"], PixelGrid.from_dict(entry["grid"]), windows, embeddings)

    def writer(
        self, key: IndexKey, scene: str, grid: PixelGrid, windows: np.ndarray, dim: int
    ) -> EntryWriter:
        """A writer for a new entry of ``len(windows)`` embeddings of size ``dim``."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / MANIFEST_NAME).exists():
            self._write_manifest()
        return EntryWriter(self, key, scene, grid, windows, dim)

    def put(self, key: IndexKey, value: SceneEmbeddings) -> None:
        """Store a whole entry at once (small entries, tests)."""
        writer = self.writer(key, value.scene, value.grid, value.windows, value.embeddings.shape[1])
        writer.append(np.asarray(value.embeddings, dtype=np.float32))
        writer.commit()

    def _store(
        self, key: IndexKey, scene: str, grid: PixelGrid, windows: np.ndarray, tmp: Path
    ) -> SceneEmbeddings:
        digest = key.digest
        names = {"embeddings": f"{digest}.embeddings.npy", "windows": f"{digest}.windows.npy"}
        with atomic_file(self.path / names["windows"]) as windows_tmp, open(windows_tmp, "wb") as handle:
            np.save(handle, windows)
        os.replace(tmp, self.path / names["embeddings"])
        stale = [
            d for d, e in self._entries.items() if e.get("setup_digest") == key.setup_digest and d != digest
        ]
        for old in stale:
            for name in (self._entries[old]["embeddings"], self._entries[old]["windows"]):
                (self.path / name).unlink(missing_ok=True)
            del self._entries[old]
        self._entries[digest] = {
            "scene": scene,
            "grid": grid.to_dict(),
            "setup_digest": key.setup_digest,
            "count": len(windows),
            **names,
        }
        self._write_manifest()
        return self.get(key)  # type: ignore[return-value]

    def _write_manifest(self) -> None:
        manifest = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "entries": self._entries}
        with atomic_file(self.path / MANIFEST_NAME) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
