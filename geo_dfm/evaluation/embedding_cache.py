"""Image embeddings of benchmark files, cached on disk so re-scoring (other prompts) encodes nothing.

An entry is keyed by the encoder's identity and by the image files' stamps (absolute path, size,
modification time): ``<cache>/<model key>/<files key>.npy`` ((N, D) float32, memory-mapped when read)
beside ``<files key>.json``. The model key hashes ``encoder.describe()``, the weights and adapter file
stamps, the preprocessing and a fingerprint of the model's parameters (so a model changed in memory,
e.g. during fine-tuning, never reads stale rows). When some files changed, the rows of the unchanged
ones are taken from the entry of the same folder and model, which the new entry then replaces.
Entries are written to a temporary file and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from geo_dfm.evaluation.images import iter_image_batches
from geo_dfm.evaluation.scratch import scratch_array
from geo_dfm.progress import Progress
from tile_tools.atomic import atomic_file

log = logging.getLogger(__name__)

CACHE_VERSION = 1
#: Marks the JSON files this module writes (nothing else in a cache folder is ever read or removed).
CACHE_FORMAT = "geo-dfm eval image embeddings"
FileStamp = tuple[str, int, int]


def default_cache_dir() -> Path:
    """``$GEO_DFM_CACHE/eval-embeddings`` (default ``~/.cache/geo-dfm/eval-embeddings``)."""
    from geo_dfm.models.checkpoints import geo_dfm_cache_dir

    return geo_dfm_cache_dir() / "eval-embeddings"


def file_stamp(path: str | os.PathLike[str]) -> FileStamp:
    """``(absolute path, size, mtime in ns)`` of a file."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return str(resolved), int(stat.st_size), int(stat.st_mtime_ns)


def _stamp_or_none(path: object) -> FileStamp | None:
    if path is None or not Path(str(path)).exists():
        return None
    folder = Path(str(path))
    if folder.is_dir():  # an adapter folder: its files
        return _digest([file_stamp(p) for p in sorted(folder.iterdir()) if p.is_file()]), 0, 0
    return file_stamp(folder)


def parameter_fingerprint(model: Any) -> str:
    """A cheap hash of a torch model's tensors (name, sum, first values): changes when training does."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            values = tensor.detach().reshape(-1).float()
            digest.update(name.encode())
            digest.update(np.float64(values.double().sum().item()).tobytes())
            digest.update(values[:8].cpu().numpy().tobytes())
    return digest.hexdigest()[:24]


def encoder_identity(encoder: Any) -> dict[str, Any]:
    """What an encoder's image embeddings depend on."""
    model = getattr(encoder, "model", None)
    return {
        "version": CACHE_VERSION,
        "describe": encoder.describe(),
        "weights": _stamp_or_none(getattr(encoder, "weights", None)),
        "adapter": _stamp_or_none(getattr(encoder, "adapter", None)),
        "input_size": int(encoder.input_size),
        "mean": list(getattr(encoder, "mean", ())),
        "std": list(getattr(encoder, "std", ())),
        "parameters": parameter_fingerprint(model) if model is not None else None,
    }


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True, eq=False)
class ImageEmbeddings:
    """(N, D) float32 L2-normalised ``vectors`` of N files (a read-only memmap when cached), and how
    many rows this call ``encoded`` or ``reused`` from the cache."""

    vectors: np.ndarray
    encoded: int
    reused: int


class EmbeddingCache:
    """Cached image embeddings under one folder (created on first write)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).expanduser()

    def _paths(self, model_key: str, files_key: str) -> tuple[Path, Path]:
        base = self.folder / model_key
        return base / f"{files_key}.npy", base / f"{files_key}.json"

    def get(self, model_key: str, files_key: str, count: int, dim: int) -> np.ndarray | None:
        """The cached (count, dim) rows, or ``None``."""
        array_path, meta_path = self._paths(model_key, files_key)
        if not (array_path.is_file() and meta_path.is_file()):
            return None
        try:
            vectors = np.load(array_path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable cache entry (%s); encoding again", array_path, exc)
            return None
        return vectors if vectors.shape == (count, dim) and vectors.dtype == np.float32 else None

    def earlier_rows(
        self, model_key: str, root: str, stamps: Sequence[FileStamp]
    ) -> dict[int, tuple[Path, int]]:
        """``{index in stamps: (entry file, row)}`` for files unchanged since an entry of the same root."""
        wanted = {tuple(stamp): i for i, stamp in enumerate(stamps)}
        found: dict[int, tuple[Path, int]] = {}
        for meta_path in sorted((self.folder / model_key).glob("*.json")):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if meta.get("format") != CACHE_FORMAT or meta.get("root") != root:
                continue
            for row, stamp in enumerate(meta.get("files", [])):
                index = wanted.get(tuple(stamp))
                if index is not None and index not in found:
                    found[index] = (meta_path.with_suffix(".npy"), row)
        return found

    def store(
        self, model_key: str, files_key: str, root: str, stamps: Sequence[FileStamp], identity: dict[str, Any]
    ) -> _PendingEntry:
        return _PendingEntry(self, model_key, files_key, root, stamps, identity)


class _PendingEntry:
    """A cache entry being written: ``vectors`` is a writable memmap; :meth:`commit` publishes it."""

    def __init__(
        self,
        cache: EmbeddingCache,
        model_key: str,
        files_key: str,
        root: str,
        stamps: Sequence[FileStamp],
        identity: dict[str, Any],
    ) -> None:
        self.cache, self.model_key, self.files_key = cache, model_key, files_key
        self.root, self.stamps, self.identity = root, list(stamps), identity
        self.array_path, self.meta_path = cache._paths(model_key, files_key)
        self.array_path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.array_path.with_name(f".{files_key}.{uuid.uuid4().hex[:8]}.tmp.npy")
        self.vectors: np.ndarray | None = None

    def open(self, dim: int) -> np.ndarray:
        self.vectors = open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(len(self.stamps), dim))
        return self.vectors

    def commit(self) -> None:
        assert self.vectors is not None
        self.vectors.flush()
        self.vectors = None
        os.replace(self.tmp, self.array_path)
        meta = {"format": CACHE_FORMAT, "root": self.root, "model": self.identity, "files": self.stamps}
        with atomic_file(self.meta_path) as tmp:
            tmp.write_text(json.dumps(meta, default=str), encoding="utf-8")
        self._drop_superseded()

    def discard(self) -> None:
        self.vectors = None
        self.tmp.unlink(missing_ok=True)

    def _drop_superseded(self) -> None:
        """Remove this cache's older entries for the same folder and model (their rows live on here)."""
        for meta_path in (self.cache.folder / self.model_key).glob("*.json"):
            if meta_path == self.meta_path:
                continue
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if meta.get("format") != CACHE_FORMAT or meta.get("root") != self.root:
                continue
            meta_path.with_suffix(".npy").unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)


def image_embeddings(
    encoder: Any,
    files: Sequence[Path],
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    batch_size: int | None = None,
    workers: int = 2,
    stage: str = "encode images",
) -> ImageEmbeddings:
    """The embeddings of ``files`` (in order): from ``cache`` where possible, else encoded in batches."""
    progress = progress or Progress()
    count, dim = len(files), int(encoder.embed_dim)
    size = batch_size or int(getattr(encoder, "batch_size", 32) or 32)
    if cache is None:
        vectors = scratch_array((count, dim), np.float32)
        _encode_into(vectors, encoder, files, range(count), size, workers, progress, stage)
        return ImageEmbeddings(vectors, count, 0)
    stamps = [file_stamp(path) for path in files]
    identity = encoder_identity(encoder)
    model_key, files_key = _digest(identity), _digest(stamps)
    cached = cache.get(model_key, files_key, count, dim)
    if cached is not None:
        progress.stage(stage, total=count)
        progress.advance(count)
        return ImageEmbeddings(cached, 0, count)
    root = os.path.commonpath([stamp[0] for stamp in stamps]) if stamps else ""
    earlier = cache.earlier_rows(model_key, root, stamps)
    entry = cache.store(model_key, files_key, root, stamps, identity)
    try:
        vectors = entry.open(dim)
        _copy_rows(vectors, earlier)
        todo = [i for i in range(count) if i not in earlier]
        _encode_into(vectors, encoder, files, todo, size, workers, progress, stage)
        entry.commit()
    except BaseException:
        entry.discard()
        raise
    return ImageEmbeddings(cache.get(model_key, files_key, count, dim), len(todo), len(earlier))


def _copy_rows(vectors: np.ndarray, earlier: dict[int, tuple[Path, int]]) -> None:
    by_file: dict[Path, list[tuple[int, int]]] = {}
    for index, (path, row) in earlier.items():
        by_file.setdefault(path, []).append((index, row))
    for path, pairs in by_file.items():
        source = np.load(path, mmap_mode="r")
        pairs.sort()
        for start in range(0, len(pairs), 8192):  # bounded memory: 8192 rows at a time
            indices, rows = (np.asarray(v) for v in zip(*pairs[start : start + 8192], strict=True))
            vectors[indices] = source[rows]


def _encode_into(
    vectors: np.ndarray,
    encoder: Any,
    files: Sequence[Path],
    indices: Sequence[int],
    batch_size: int,
    workers: int,
    progress: Progress,
    stage: str,
) -> None:
    indices = list(indices)
    progress.stage(stage, total=len(indices))
    size = int(encoder.input_size)
    done = 0
    for batch in iter_image_batches([files[i] for i in indices], size, batch_size, workers):
        rows = indices[done : done + len(batch)]
        vectors[rows] = np.asarray(encoder.encode_images(batch, batch_size=len(batch)), dtype=np.float32)
        done += len(batch)
        progress.advance(len(batch))
