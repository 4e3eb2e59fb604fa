"""The prefetcher: same chips as sequential reads, in order, bounded, errors raised, clean early stop."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rasterio.windows import Window

from tile_tools.grid import regular_windows
from tile_tools.prefetch import iter_chip_batches, iter_chips
from tile_tools.reader import SceneReader


class CountingReader:
    """Records reads in flight and chips alive (not yet consumed) to check the memory bound."""

    def __init__(self, fail_at: int | None = None, delay: float = 0.002) -> None:
        self.lock = threading.Lock()
        self.started = 0
        self.fail_at = fail_at
        self.delay = delay

    def read_chip(self, window: Window) -> int:
        with self.lock:
            self.started += 1
        time.sleep(self.delay)
        if self.fail_at is not None and window.col_off == self.fail_at:
            raise RuntimeError(f"cannot read {window}")
        return int(window.col_off)


def windows(n: int) -> list[Window]:
    return [Window(i, 0, 1, 1) for i in range(n)]


def test_prefetched_chips_equal_sequential_reads(make_scene, rng):
    data = rng.integers(0, 4000, (3, 96, 96)).astype(np.uint16)
    with SceneReader(make_scene(data)) as reader:
        ws = regular_windows(96, 96, 32, 16)
        batches = list(iter_chip_batches(reader, ws, batch_size=4, workers=3, prefetch=2))
        assert len(ws) == 25 and [len(b) for b in batches] == [4] * 6 + [1]
        chips = [c for b in batches for c in b]
        assert [c.window for c in chips] == ws
        for chip in chips:
            np.testing.assert_array_equal(chip.image, reader.read_chip(chip.window).image)
        assert [c.window for c in iter_chips(reader, ws, workers=2, chunk=3)] == ws


def test_memory_is_bounded_by_batch_times_prefetch():
    reader = CountingReader()
    batch, prefetch = 5, 3
    for consumed, chips in enumerate(
        iter_chip_batches(reader, windows(200), batch, workers=4, prefetch=prefetch)
    ):
        time.sleep(0.005)  # the "model" is slower than reading
        assert reader.started <= (consumed + 1 + prefetch) * batch
        assert chips == list(range(consumed * batch, (consumed + 1) * batch))


def test_errors_reach_the_consumer():
    reader = CountingReader(fail_at=13)
    seen = []
    with pytest.raises(RuntimeError, match="cannot read"):
        for chips in iter_chip_batches(reader, windows(40), 4, workers=2):
            seen.extend(chips)
    assert seen == list(range(12))


def test_early_stop_cancels_pending_reads():
    reader = CountingReader(delay=0.01)
    before = threading.active_count()
    gen = iter_chip_batches(reader, windows(1000), 10, workers=2, prefetch=2)
    next(gen)
    gen.close()
    started = reader.started
    time.sleep(0.05)
    assert reader.started == started <= 40
    assert threading.active_count() <= before


def test_sequential_mode():
    assert list(iter_chip_batches(CountingReader(), windows(5), 2, workers=0)) == [[0, 1], [2, 3], [4]]
