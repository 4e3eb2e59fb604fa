"""Scene-wide statistics from blocks, in one pass, and the min–max normalisation they drive.

- :class:`ChannelStats`: per channel min, max, valid count and sum over the finite pixels of a stream of
  :class:`~tile_tools.blocks.Block` s (NaN = invalid); merge per block, so one pass can feed it beside
  writers. :meth:`ChannelStats.normalize` / :func:`normalized_blocks` scale blocks to [0, 1] exactly as
  :func:`tile_tools.postprocess.minmax_normalize` scales a whole array (a constant channel → 0,
  invalid → NaN).
- :func:`blocks_percentile`: the exact ``np.percentile`` (linear method) of all finite values of a
  re-iterable stream of arrays, with bounded memory: a radix selection on the values' 64-bit keys, 16 bits
  per pass; usually 2 passes (the second collects the at most ``collect_limit`` candidates), 5 at worst.
  Exact: equal to ``np.percentile(all_values.astype(float64), percent)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tile_tools.blocks import Block


@dataclass(frozen=True, eq=False)
class ChannelStats:
    """Per-channel statistics of the finite pixels seen: ``min``, ``max`` (float64; ±inf when a channel
    had no finite pixel), ``count`` (int64) and ``sum`` (float64), each of shape (C,)."""

    min: np.ndarray
    max: np.ndarray
    count: np.ndarray
    sum: np.ndarray

    @property
    def channels(self) -> int:
        return len(self.count)

    @classmethod
    def empty(cls, channels: int) -> ChannelStats:
        return cls(
            np.full(channels, np.inf),
            np.full(channels, -np.inf),
            np.zeros(channels, np.int64),
            np.zeros(channels),
        )

    @classmethod
    def of(cls, data: np.ndarray) -> ChannelStats:
        """Statistics of one (C, h, w) block (NaN and ±inf are invalid)."""
        values = np.asarray(data, dtype=np.float64)
        if values.ndim != 3:
            raise ValueError(f"expected (C, h, w) block data, got shape {values.shape}")
        flat = values.reshape(values.shape[0], -1)
        finite = np.isfinite(flat)
        return cls(
            np.where(finite, flat, np.inf).min(axis=1, initial=np.inf),
            np.where(finite, flat, -np.inf).max(axis=1, initial=-np.inf),
            finite.sum(axis=1).astype(np.int64),
            np.where(finite, flat, 0.0).sum(axis=1),
        )

    @classmethod
    def from_blocks(cls, blocks: Iterable[Block]) -> ChannelStats:
        """One pass over ``blocks`` (any order)."""
        stats: ChannelStats | None = None
        for block in blocks:
            part = cls.of(block.data)
            stats = part if stats is None else stats.merge(part)
        if stats is None:
            raise ValueError("no blocks")
        return stats

    def merge(self, other: ChannelStats) -> ChannelStats:
        if other.channels != self.channels:
            raise ValueError(f"cannot merge statistics of {self.channels} and {other.channels} channels")
        return ChannelStats(
            np.minimum(self.min, other.min),
            np.maximum(self.max, other.max),
            self.count + other.count,
            self.sum + other.sum,
        )

    @property
    def mean(self) -> np.ndarray:
        """(C,) mean of the finite pixels (NaN for a channel without any)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum / np.maximum(self.count, 1), np.nan)

    def normalize(self, data: np.ndarray) -> np.ndarray:
        """(C, h, w) → float32 ``(x − min) / (max − min)`` per channel; a constant channel → 0;
        non-finite pixels (and every pixel of a channel without valid pixels) → NaN."""
        values = np.asarray(data, dtype=np.float64)
        if values.ndim != 3 or values.shape[0] != self.channels:
            raise ValueError(f"expected ({self.channels}, h, w) block data, got shape {values.shape}")
        out = np.empty(values.shape, np.float32)
        for c in range(self.channels):
            band = values[c]
            lo, span = self.min[c], self.max[c] - self.min[c]
            scaled = (band - lo) / span if span > 0 else np.zeros_like(band)
            out[c] = np.where(np.isfinite(band) & (self.count[c] > 0), scaled, np.nan)
        return out


def normalized_blocks(blocks: Iterable[Block], stats: ChannelStats) -> Iterator[Block]:
    """Min–max normalise each block with scene-wide ``stats`` (see :meth:`ChannelStats.normalize`)."""
    for window, data in blocks:
        yield Block(window, stats.normalize(data))


# ------------------------------------------------------------------------ exact percentile

_SIGN = np.uint64(1 << 63)
_DIGIT_BITS = 16
#: A candidate group at most this large is collected and sorted instead of histogrammed further.
COLLECT_LIMIT = 1 << 20


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 keys of the finite float64 ``values``."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _value(key: int) -> float:
    bits = np.uint64(key)
    bits = bits & ~_SIGN if bits & _SIGN else ~bits
    return float(bits.view(np.float64))


def _finite_keys(values: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for array in values:
        flat = np.asarray(array, dtype=np.float64).ravel()
        yield _keys(flat[np.isfinite(flat)])


def _in_group(keys: np.ndarray, prefix: int, bits: int) -> np.ndarray:
    return keys if bits == 0 else keys[(keys >> np.uint64(64 - bits)) == np.uint64(prefix)]


def _histogram(keys: np.ndarray, bits: int) -> np.ndarray:
    digits = (keys >> np.uint64(64 - bits - _DIGIT_BITS)) & np.uint64((1 << _DIGIT_BITS) - 1)
    return np.bincount(digits.astype(np.int64), minlength=1 << _DIGIT_BITS)


class _Target(NamedTuple):
    """A rank being searched: values whose top ``bits`` key bits are ``prefix`` hold it at ``within``."""

    prefix: int
    bits: int
    within: int
    group_size: int


def _descend(target: _Target, histogram: np.ndarray) -> _Target:
    cumulative = np.cumsum(histogram)
    digit = int(np.searchsorted(cumulative, target.within, side="right"))
    before = int(cumulative[digit - 1]) if digit else 0
    return _Target(
        (target.prefix << _DIGIT_BITS) | digit,
        target.bits + _DIGIT_BITS,
        target.within - before,
        int(cumulative[digit]) - before,
    )


def _select(
    values: Callable[[], Iterable[np.ndarray]], targets: dict[int, _Target], collect_limit: int
) -> dict[int, float]:
    """Exact values of the targets' ranks, one pass over ``values()`` per key digit (or collection)."""
    found: dict[int, float] = {}
    while targets:
        for rank, target in list(targets.items()):
            if target.bits == 64:
                found[rank] = _value(target.prefix)
                del targets[rank]
        if not targets:
            break
        groups = {(t.prefix, t.bits, t.group_size <= collect_limit) for t in targets.values()}
        parts: dict[tuple[int, int], list[np.ndarray]] = {(p, b): [] for p, b, small in groups if small}
        hists = {(p, b): np.zeros(1 << _DIGIT_BITS, np.int64) for p, b, small in groups if not small}
        for keys in _finite_keys(values()):
            for (prefix, bits), kept in parts.items():
                kept.append(_in_group(keys, prefix, bits))
            for (prefix, bits), hist in hists.items():
                hist += _histogram(_in_group(keys, prefix, bits), bits)
        for rank, target in list(targets.items()):
            group = (target.prefix, target.bits)
            if group in parts:
                found[rank] = _value(int(np.sort(np.concatenate(parts[group]))[target.within]))
                del targets[rank]
            else:
                targets[rank] = _descend(target, hists[group])
    return found


def blocks_percentile(
    values: Callable[[], Iterable[np.ndarray]], percent: float, collect_limit: int = COLLECT_LIMIT
) -> float:
    """``np.percentile`` (linear interpolation, float64) of every finite value in the arrays that
    ``values()`` yields; ``values`` is called once per pass (e.g. ``lambda: (b.data[0] for b in
    acc.iter_blocks())``). NaN when there is no finite value. Memory: ``collect_limit`` values."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be in [0, 100], got {percent}")
    top = np.zeros(1 << _DIGIT_BITS, np.int64)
    for keys in _finite_keys(values()):  # pass 1: the count and the top 16 key bits
        top += _histogram(keys, 0)
    n = int(top.sum())
    if n == 0:
        return float("nan")
    q = np.true_divide(percent, 100)
    virtual = (n - 1) * q  # numpy's "linear" virtual index, clipped as numpy clips it
    lower = n - 1 if virtual >= n - 1 else int(np.floor(virtual))
    upper = min(lower + 1, n - 1)
    gamma = virtual - np.floor(virtual)
    targets = {rank: _descend(_Target(0, 0, rank, n), top) for rank in {lower, upper}}
    found = _select(values, targets, collect_limit)
    a, b = np.float64(found[lower]), np.float64(found[upper])
    diff = b - a
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)
