"""WebDataset-style tar shards: pairs streamed sample by sample, never loaded whole.

A sample is the run of consecutive tar members sharing a key (the member path up to the first dot
of its file name): one image (``jpg``, ``png``, ``webp``, ``tif``…), a caption (``txt``, or ``json``
with ``caption``/``text``) and optionally a class id (``cls``, used as the pair's group).
Shards are given as a ``.tar`` file, a folder of them, or a brace pattern
(``data-{000000..000099}.tar``). Each epoch reads the shards in a seeded order through a seeded
shuffle buffer of ``buffer`` samples (encoded bytes, decoded one by one after the buffer).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geo_dfm.pairs.images import decode_image, is_image_name
from geo_dfm.training.data import ImageTextPair, UnreadableImage
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")
CAPTION_EXTENSIONS = ("txt", "caption", "json")


def expand_shards(spec: str | os.PathLike[str]) -> list[Path]:
    """The shard files of ``spec``: a ``.tar``, a folder of ``.tar`` files, or a brace pattern."""
    text = str(spec)
    match = _BRACE.search(text)
    if match:
        first, last = match.group(1), match.group(2)
        width = len(first)
        numbers = range(int(first), int(last) + 1)
        paths = [Path(text[: match.start()] + f"{n:0{width}d}" + text[match.end() :]) for n in numbers]
    else:
        path = Path(text)
        paths = sorted(path.glob("*.tar")) if path.is_dir() else [path]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        raise InputError(spec, f"shard not found: {missing[0] if missing else text}")
    return paths


def is_shard_spec(spec: str | os.PathLike[str]) -> bool:
    """True for a ``.tar`` path, a brace pattern of them, or a folder holding ``.tar`` files."""
    text = str(spec)
    if _BRACE.search(text) or text.lower().endswith(".tar"):
        return True
    path = Path(text)
    return path.is_dir() and any(path.glob("*.tar"))


def _split_name(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


@dataclass
class Sample:
    """The members of one key: ``{extension: bytes}``."""

    shard: Path
    key: str
    parts: dict[str, bytes] = field(default_factory=dict)

    @property
    def image_extension(self) -> str | None:
        return next((ext for ext in self.parts if is_image_name(f"x.{ext}")), None)

    def caption(self) -> str | None:
        for ext in CAPTION_EXTENSIONS:
            if ext in self.parts:
                text = self.parts[ext].decode("utf-8", errors="replace").strip()
                if ext == "json":
                    try:
                        data = json.loads(text)
                    except json.JSONDecodeError:
                        return None
                    text = (
                        str(data.get("caption") or data.get("text") or "").strip()
                        if isinstance(data, dict)
                        else ""
                    )
                return text or None
        return None

    def group(self) -> int | None:
        raw = self.parts.get("cls")
        try:
            return int(raw.decode().strip()) if raw is not None else None
        except ValueError:
            return None

    @property
    def name(self) -> str:
        return f"{self.shard}:{self.key}.{self.image_extension}"

    def decode(self) -> ImageTextPair | UnreadableImage:
        try:
            image = decode_image(self.parts[self.image_extension], self.name)
        except UnreadableImage as error:
            return error
        return ImageTextPair(image, self.caption(), self.group())


def iter_samples(shard: Path) -> Iterator[Sample]:
    """The complete samples (an image and a caption) of one shard, streamed in tar order."""
    current: Sample | None = None
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, extension = _split_name(member.name)
                if current is not None and key != current.key:
                    if _complete(current):
                        yield current
                    current = None
                if current is None:
                    current = Sample(shard, key)
                handle = tar.extractfile(member)
                current.parts[extension] = handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(shard, f"not a readable tar shard ({exc})") from None
    if current is not None and _complete(current):
        yield current


def _complete(sample: Sample) -> bool:
    return sample.image_extension is not None and sample.caption() is not None


def count_samples(shard: Path) -> int:
    """Complete samples in ``shard``, from the tar headers only (member data is skipped, not read)."""
    seen: dict[str, set[str]] = {}
    try:
        with tarfile.open(shard, mode="r:*") as tar:
            for member in tar:
                if member.isfile():
                    key, extension = _split_name(member.name)
                    seen.setdefault(key, set()).add(extension)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(shard, f"not a readable tar shard ({exc})") from None
    return sum(
        1
        for extensions in seen.values()
        if any(is_image_name(f"x.{e}") for e in extensions)
        and any(e in CAPTION_EXTENSIONS for e in extensions)
    )


class ShardPairs:
    """Pairs streamed from tar shards (a :class:`geo_dfm.training.PairStream`)."""

    kind = "shards"

    def __init__(self, spec: str | os.PathLike[str], buffer: int = 256) -> None:
        self.path = Path(str(spec))
        self.shards = expand_shards(spec)
        self.buffer = max(1, buffer)
        self.count = sum(count_samples(shard) for shard in self.shards)
        self.skipped: dict[str, str] = {}
        if self.count == 0:
            raise InputError(spec, "the shards hold no sample with both an image and a caption")

    def __len__(self) -> int:
        return self.count

    def iter_epoch(self, epoch: int, seed: int) -> Iterator[ImageTextPair | UnreadableImage]:
        """Every sample once, shards in a seeded order, through a seeded shuffle buffer."""
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self.shards))
        buffer: list[Sample] = []
        for index in order:
            for sample in iter_samples(self.shards[index]):
                buffer.append(sample)
                if len(buffer) >= self.buffer:
                    yield buffer.pop(int(rng.integers(len(buffer)))).decode()
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer)))).decode()

    def iter_ordered(self) -> Iterator[Sample]:
        """Every complete sample in shard and tar order (encoded)."""
        for shard in self.shards:
            yield from iter_samples(shard)

    def describe(self) -> dict[str, object]:
        return {"path": str(self.path), "format": "shards", "shards": len(self.shards), "pairs": self.count}


class ShardWriter:
    """Writes samples into ``folder/<prefix>-NNNNNN.tar`` shards of at most ``per_shard`` samples."""

    def __init__(self, folder: Path, prefix: str = "pairs", per_shard: int = 1000) -> None:
        self.folder, self.prefix, self.per_shard = folder, prefix, max(1, per_shard)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []
        self._tar: tarfile.TarFile | None = None
        self._in_shard = 0
        self.written = 0

    def write(self, key: str, parts: dict[str, bytes]) -> None:
        if self._tar is None or self._in_shard >= self.per_shard:
            self._next_shard()
        for extension, data in parts.items():
            info = tarfile.TarInfo(f"{key}.{extension}")
            info.size = len(data)
            info.mtime = 0
            self._tar.addfile(info, io.BytesIO(data))
        self._in_shard += 1
        self.written += 1

    def _next_shard(self) -> None:
        self.close()
        path = self.folder / f"{self.prefix}-{len(self.paths):06d}.tar"
        self.paths.append(path)
        self._tar = tarfile.open(path, mode="w")  # noqa: SIM115 - closed in close()
        self._in_shard = 0

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_shards(
    samples: Iterable[tuple[str, dict[str, bytes]]],
    folder: Path,
    prefix: str = "pairs",
    per_shard: int = 1000,
) -> list[Path]:
    """Write ``(key, {extension: bytes})`` samples as tar shards; returns the shard paths."""
    with ShardWriter(folder, prefix, per_shard) as writer:
        for key, parts in samples:
            writer.write(key, parts)
    return writer.paths
