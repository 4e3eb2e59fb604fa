"""Read chips in background threads while the consumer (a model) works on the previous batch.

While the consumer holds one batch, up to ``prefetch`` further batches are being read, each by one
thread (a batch is read in window order on one dataset handle, so overlapping chips share GDAL's
block cache). Memory is bounded by ``batch_size × (prefetch + 1)`` chips whatever the scene size.
Batches come out in the order of ``windows``; a read error is raised in the consumer; stopping early
(``break``, an exception, ``close()``) cancels the reads not started and waits for the running ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

from rasterio.windows import Window

from tile_tools.chip import Chip
from tile_tools.source import ChipSource


def _batches(windows: Iterable[Window], batch_size: int) -> Iterator[list[Window]]:
    """``windows`` in lists of ``batch_size``, lazily (a WindowArray is never expanded whole)."""
    it = iter(windows)
    while batch := list(islice(it, batch_size)):
        yield batch


def iter_chip_batches(
    reader: ChipSource, windows: Iterable[Window], batch_size: int, workers: int = 2, prefetch: int = 2
) -> Iterator[list[Chip]]:
    """Yield ``reader.read_chip(w)`` for ``windows`` in lists of ``batch_size`` (the last may be shorter).

    Up to ``min(workers, prefetch)`` threads read, each with its own dataset handle; ``workers=0``
    reads in the caller's thread, one batch at a time. An error of a read (e.g. the
    :class:`~tile_tools.errors.InputError` of a corrupt block) is raised in the consumer as it was.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if prefetch < 1:
        raise ValueError(f"prefetch must be >= 1, got {prefetch}")
    batches = _batches(windows, batch_size)
    if workers <= 0:
        for batch in batches:
            yield _read_batch(reader, batch)
        return
    executor = ThreadPoolExecutor(max_workers=min(workers, prefetch), thread_name_prefix="chip-reader")
    pending: deque[Future[list[Chip]]] = deque()
    try:
        for batch in batches:
            pending.append(executor.submit(_read_batch, reader, batch))
            if len(pending) > prefetch:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


def _read_batch(reader: ChipSource, windows: list[Window]) -> list[Chip]:
    return [reader.read_chip(w) for w in windows]


def iter_chips(
    reader: ChipSource, windows: Iterable[Window], workers: int = 2, chunk: int = 16
) -> Iterator[Chip]:
    """Chips one by one, read ahead in background threads (``chunk`` chips per read-ahead batch)."""
    for batch in iter_chip_batches(reader, windows, chunk, workers=workers, prefetch=2):
        yield from batch
