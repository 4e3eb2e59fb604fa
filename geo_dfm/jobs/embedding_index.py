"""A reusable store of chip embeddings (``.npz``) so later searches encode no image again.

One file holds entries for many scenes. An entry is keyed by everything its embeddings depend
on: the scene file (absolute path, size, modification time), the model identity and the chip
parameters. A changed scene file, model or chip setting gives a new key, and the stale entry of
the same scene/model/chips is dropped when the new one is stored. The file is rewritten
atomically; an unreadable file is ignored with a warning (and rebuilt).
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

from tile_tools.atomic import atomic_file

log = logging.getLogger(__name__)

INDEX_FILE_NAME = "geo-dfm-embeddings.npz"
_FIELDS = ("windows", "transform", "embeddings", "meta")


@dataclass(frozen=True)
class SceneEmbeddings:
    """The embeddings of one scene's chips.

    ``windows``: (N, 4) int64 ``col_off, row_off, width, height`` in the working grid, which
    ``transform`` (the 6 affine coefficients a, b, c, d, e, f) places in ``crs_wkt`` ("" = none);
    ``embeddings``: (N, D) float32, L2-normalised.
    """

    scene: str
    crs_wkt: str
    transform: tuple[float, ...]
    windows: np.ndarray
    embeddings: np.ndarray

    def __len__(self) -> int:
        return len(self.windows)


def scene_stamp(scene: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a scene file's content cheaply: absolute path, size, mtime (ns)."""
    path = Path(scene).resolve()
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


class EmbeddingIndex:
    """Entries loaded from (and saved to) one ``.npz`` file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, np.ndarray]] = {}
        self.changed = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except Exception as exc:  # a truncated or foreign file: start afresh
            log.warning("%s: unreadable embedding index (%s); it will be rebuilt", self.path, exc)
            return
        for name, array in arrays.items():
            digest, _, field = name.partition("__")
            if field in _FIELDS:
                self._entries.setdefault(digest, {})[field] = array
        self._entries = {d: e for d, e in self._entries.items() if set(e) == set(_FIELDS)}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: IndexKey) -> SceneEmbeddings | None:
        entry = self._entries.get(key.digest)
        if entry is None:
            return None
        meta = json.loads(str(entry["meta"]))
        return SceneEmbeddings(
            scene=meta["scene"],
            crs_wkt=meta["crs_wkt"],
            transform=tuple(float(v) for v in entry["transform"]),
            windows=entry["windows"],
            embeddings=entry["embeddings"],
        )

    def put(self, key: IndexKey, value: SceneEmbeddings) -> None:
        stale = [
            digest
            for digest, entry in self._entries.items()
            if json.loads(str(entry["meta"])).get("setup_digest") == key.setup_digest
        ]
        for digest in stale:
            del self._entries[digest]
        meta = {"scene": value.scene, "crs_wkt": value.crs_wkt, "setup_digest": key.setup_digest}
        self._entries[key.digest] = {
            "windows": np.asarray(value.windows, dtype=np.int64).reshape(-1, 4),
            "transform": np.asarray(value.transform, dtype=np.float64).reshape(6),
            "embeddings": np.asarray(value.embeddings, dtype=np.float32),
            "meta": np.array(json.dumps(meta)),
        }
        self.changed = True

    def save(self) -> Path:
        """Rewrite the file atomically with every entry."""
        arrays = {
            f"{digest}__{field}": array
            for digest, entry in self._entries.items()
            for field, array in entry.items()
        }
        with atomic_file(self.path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        self.changed = False
        return self.path
