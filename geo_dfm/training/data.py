"""Where training batches come from: pairs held in memory, pairs read from files on demand, streamed shards.

A batcher hands the trainer one :class:`Batch` at a time (uint8 crops at the model's input size,
token ids, optional groups) and can save and restore its position (``state_dict``), so a resumed run
sees exactly the batches an uninterrupted one would.

- :class:`MemoryBatches` — a list of :class:`ImageTextPair` (the toy model's path): every image is
  resized once and cached as uint8; batches follow seeded permutations drawn from the trainer's
  generator (the same draws as before fine-tuning existed, so the toy model's weights do not change).
- :class:`DatasetBatches` — a :class:`PairDataset` (CSV/Parquet rows, ImageFolder files) read on demand:
  one seeded permutation per epoch, the next batch decoded in background threads while the model trains.
- :class:`StreamBatches` — a :class:`PairStream` (WebDataset tar shards) read sequentially in a seeded
  per-epoch order, never loaded whole (read in the training thread: its position is known only once
  a batch has been read).

An image that cannot be decoded is skipped: it is logged once with its path and listed in the
result's ``skipped``; the batch is one pair shorter.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from geo_dfm.training.images import EvalPreprocess
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

Tokenizer = Callable[[Sequence[str]], torch.Tensor]
CACHE_BYTES = 512 * 2**20
"""Crops of file-backed pairs kept in memory at most (uint8 at the model's input size)."""


@dataclass(frozen=True, eq=False)
class ImageTextPair:
    """One training example: an H×W×3 uint8 image and its caption.

    Pairs sharing a ``group`` (e.g. a class id, or several captions of one image) are treated as
    positives of each other.
    """

    image: np.ndarray
    caption: str
    group: int | None = None


class UnreadableImage(InputError):
    """An image of the training pairs that cannot be read or decoded (``source`` names it)."""


@runtime_checkable
class PairDataset(Protocol):
    """Pairs addressed by index and read on demand."""

    def __len__(self) -> int: ...

    def load(self, index: int) -> ImageTextPair:
        """The pair at ``index``; raises :class:`UnreadableImage` for an image that cannot be decoded."""
        ...


@runtime_checkable
class PairStream(Protocol):
    """Pairs read sequentially, in an order fixed by ``(epoch, seed)``."""

    def __len__(self) -> int: ...

    def iter_epoch(self, epoch: int, seed: int) -> Iterator[ImageTextPair | UnreadableImage]:
        """Every pair once; an unreadable image is yielded as its :class:`UnreadableImage`."""
        ...


@dataclass(frozen=True, eq=False)
class Batch:
    """``images`` (B, 3, S, S) uint8, ``tokens`` (B, context) int64, ``groups`` (B,) int64 or None."""

    images: torch.Tensor
    tokens: torch.Tensor
    groups: torch.Tensor | None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def as_pairs(items: Sequence) -> list[ImageTextPair]:
    """Accept :class:`ImageTextPair` objects or ``(image, caption[, group])`` tuples."""
    pairs = [item if isinstance(item, ImageTextPair) else ImageTextPair(*item) for item in items]
    if not pairs:
        raise InputError("pairs", "no image-text pairs to train on")
    for index, pair in enumerate(pairs):
        image = np.asarray(pair.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(
                "pairs", f"pair {index}: image must be H×W×3 uint8, got {image.shape} {image.dtype}"
            )
        if not pair.caption.strip():
            raise InputError("pairs", f"pair {index}: empty caption")
    return pairs


def epoch_permutation(count: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of ``count`` pairs in ``epoch`` (a pure function of ``seed`` and ``epoch``)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.randperm(count, generator=torch.Generator().manual_seed(int(state) & (2**63 - 1)))


class MemoryBatches:
    """Batches from pairs in memory, every image cropped once and cached (N×3×S×S uint8).

    The order is drawn from the trainer's ``generator``: one permutation, consumed ``batch_size`` at a
    time; a new permutation when fewer than ``batch_size`` pairs are left (the rest is dropped).
    """

    def __init__(
        self, pairs: Sequence, preprocess: EvalPreprocess, tokenizer: Tokenizer, batch_size: int, generator
    ) -> None:
        items = as_pairs(pairs)
        self.pairs = len(items)
        self.batch_size = min(batch_size, len(items))
        self._generator = generator
        self.images = preprocess.to_uint8([p.image for p in items])
        captions = sorted({p.caption for p in items})
        lookup = {c: i for i, c in enumerate(captions)}
        self._caption_index = torch.tensor([lookup[p.caption] for p in items])
        self._tokens = tokenizer(captions)
        has_groups = all(p.group is not None for p in items)
        self._groups = torch.tensor([p.group for p in items]) if has_groups else None
        self._order: torch.Tensor | None = None
        self._cursor = 0
        self.skipped: dict[str, str] = {}

    def next(self) -> Batch:
        if self._order is None:
            self._order = torch.randperm(self.pairs, generator=self._generator)
        if self._cursor + self.batch_size > len(self._order):
            self._order, self._cursor = torch.randperm(self.pairs, generator=self._generator), 0
        index = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        groups = None if self._groups is None else self._groups[index]
        return Batch(self.images[index], self._tokens[self._caption_index[index]], groups)

    def state_dict(self) -> dict[str, Any]:
        return {"order": self._order, "cursor": self._cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._order, self._cursor = state["order"], int(state["cursor"])

    def close(self) -> None:
        pass


class _PrefetchingBatches:
    """Shared machinery: the next batch is produced in a background thread while the caller trains."""

    def __init__(
        self, preprocess: EvalPreprocess, tokenizer: Tokenizer, batch_size: int, workers: int
    ) -> None:
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.skipped: dict[str, str] = {}
        self._workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="geo-dfm-pairs")
        self._producer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geo-dfm-batches")
        self._pending: Future | None = None
        self._position: dict[str, int] = {}

    # subclasses: _advance() -> plan of the next batch (moves the position), _produce(plan) -> Batch
    def _advance(self) -> Any:
        raise NotImplementedError

    def _produce(self, plan: Any) -> Batch:
        raise NotImplementedError

    def next(self) -> Batch:
        if self._pending is None:
            self._pending = self._producer.submit(self._produce, self._advance())
        batch = self._pending.result()
        delivered = dict(self._position)
        self._pending = self._producer.submit(self._produce, self._advance())
        self._delivered = delivered
        return batch

    def state_dict(self) -> dict[str, Any]:
        return dict(getattr(self, "_delivered", self._position))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._drop_pending()
        self._position = {key: int(value) for key, value in state.items()}
        self._delivered = dict(self._position)

    def close(self) -> None:
        self._drop_pending()
        self._producer.shutdown(wait=True)
        self._pool.shutdown(wait=True)

    def _drop_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(Exception):  # a batch nobody will use
                self._pending.result()
            self._pending = None

    def _skip(self, error: UnreadableImage) -> None:
        if error.source not in self.skipped:
            log.warning("skipping an unreadable image: %s", error)
            self.skipped[str(error.source)] = error.problem

    def _collate(self, pairs: list[ImageTextPair]) -> Batch:
        crops = np.stack([self.preprocess.crop(pair.image) for pair in pairs])
        images = torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()
        tokens = self.tokenizer([pair.caption for pair in pairs])
        has_groups = all(pair.group is not None for pair in pairs)
        groups = torch.tensor([pair.group for pair in pairs]) if has_groups else None
        return Batch(images, tokens, groups)


class DatasetBatches(_PrefetchingBatches):
    """Batches from a :class:`PairDataset`: per epoch one seeded permutation (:func:`epoch_permutation`),
    consumed ``batch_size`` at a time, the remainder dropped.

    Decoded pairs are kept cropped to the model's input size (uint8) up to ``cache_bytes``, so later
    epochs of a small set decode nothing; cropping a crop changes nothing, so batches are the same
    with or without the cache.
    """

    def __init__(
        self,
        dataset: PairDataset,
        preprocess: EvalPreprocess,
        tokenizer: Tokenizer,
        batch_size: int,
        seed: int,
        workers: int = 2,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.dataset = dataset
        self.pairs = len(dataset)
        if self.pairs < 2:
            raise InputError("pairs", f"need at least 2 image-text pairs, got {self.pairs}")
        super().__init__(preprocess, tokenizer, min(batch_size, self.pairs), workers)
        self.seed = seed
        self._position = {"epoch": 0, "cursor": 0}
        self._orders: dict[int, torch.Tensor] = {}
        self._cache: dict[int, ImageTextPair | UnreadableImage] = {}
        self._cache_left = cache_bytes
        self._cache_lock = threading.Lock()

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch not in self._orders:
            self._orders = {epoch: epoch_permutation(self.pairs, self.seed, epoch)}
        return self._orders[epoch]

    def _advance(self) -> list[int]:
        epoch, cursor = self._position["epoch"], self._position["cursor"]
        if cursor + self.batch_size > self.pairs:
            epoch, cursor = epoch + 1, 0
        index = self._order(epoch)[cursor : cursor + self.batch_size].tolist()
        self._position = {"epoch": epoch, "cursor": cursor + self.batch_size}
        return index

    def _produce(self, index: list[int]) -> Batch:
        loaded = list(self._pool.map(self._load, index))
        pairs = []
        for item in loaded:
            if isinstance(item, UnreadableImage):
                self._skip(item)
            else:
                pairs.append(item)
        if len(pairs) < 2:
            raise InputError(
                "pairs", f"a batch has fewer than 2 readable images ({len(self.skipped)} skipped)"
            )
        return self._collate(pairs)

    def _load(self, index: int) -> ImageTextPair | UnreadableImage:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        try:
            pair = self.dataset.load(index)
            item: ImageTextPair | UnreadableImage = ImageTextPair(
                self.preprocess.crop(pair.image), pair.caption, pair.group
            )
        except UnreadableImage as error:
            item = error
        size = item.image.nbytes if isinstance(item, ImageTextPair) else 0
        with self._cache_lock:
            if size <= self._cache_left:
                self._cache[index] = item
                self._cache_left -= size
        return item


class StreamBatches(_PrefetchingBatches):
    """Batches from a :class:`PairStream`, ``batch_size`` consecutive readable pairs; the stream runs on
    into the next epoch (a new seeded order) when it ends."""

    def __init__(
        self, stream: PairStream, preprocess: EvalPreprocess, tokenizer: Tokenizer, batch_size: int, seed: int
    ) -> None:
        self.stream = stream
        self.pairs = len(stream)
        if self.pairs < 2:
            raise InputError("pairs", f"need at least 2 image-text pairs, got {self.pairs}")
        super().__init__(preprocess, tokenizer, min(batch_size, self.pairs), workers=1)
        self.seed = seed
        self._position = {"epoch": 0, "consumed": 0}
        self._iterator: Iterator | None = None
        self._iterator_at: tuple[int, int] | None = None

    def _advance(self) -> tuple[int, int]:
        return self._position["epoch"], self._position["consumed"]

    def _produce(self, start: tuple[int, int]) -> Batch:
        epoch, consumed = start
        if self._iterator is None or self._iterator_at != start:
            self._iterator = self.stream.iter_epoch(epoch, self.seed)
            for _ in range(consumed):  # a restored position: replay up to it
                next(self._iterator)
        readable_from_start = 0 if consumed == 0 else None
        pairs: list[ImageTextPair] = []
        while len(pairs) < self.batch_size:
            item = next(self._iterator, None)
            if item is None:
                if readable_from_start == 0:
                    raise InputError("pairs", "the shards hold no readable image-text pair")
                epoch, consumed, readable_from_start = epoch + 1, 0, 0
                self._iterator = self.stream.iter_epoch(epoch, self.seed)
                continue
            consumed += 1
            if isinstance(item, UnreadableImage):
                self._skip(item)
                continue
            pairs.append(item)
            if readable_from_start is not None:
                readable_from_start += 1
        self._iterator_at = (epoch, consumed)
        self._position = {"epoch": epoch, "consumed": consumed}
        return self._collate(pairs)

    def next(self) -> Batch:
        # the stream's position is known only once a batch is read: no read-ahead here
        delivered = self._produce(self._advance())
        self._delivered = dict(self._position)
        return delivered


def make_batches(
    pairs: Any,
    preprocess: EvalPreprocess,
    tokenizer: Tokenizer,
    batch_size: int,
    seed: int,
    generator: torch.Generator,
    workers: int = 2,
):
    """The batcher for ``pairs``: a :class:`PairStream`, a :class:`PairDataset` or a sequence of pairs."""
    if isinstance(pairs, PairStream):
        return StreamBatches(pairs, preprocess, tokenizer, batch_size, seed)
    if isinstance(pairs, PairDataset):
        return DatasetBatches(pairs, preprocess, tokenizer, batch_size, seed, workers)
    return MemoryBatches(pairs, preprocess, tokenizer, batch_size, generator)
