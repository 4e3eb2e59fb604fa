"""``WindowArray``: many pixel windows kept compactly as an (N, 4) int64 array, seen as ``Sequence[Window]``.

A million windows take 32 MB here, against about 80 MB for a list of ``Window`` objects
(benchmarks/plan_scale.py), and vectorised filters run on the array. Columns are ``col_off,
row_off, width, height`` (rasterio's order); indexing gives ``rasterio.windows.Window`` objects, slicing
gives another ``WindowArray``; ``.array`` is the read-only array for vectorised work.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np
from rasterio.windows import Window


class WindowArray(Sequence[Window]):
    """An immutable sequence of integer windows backed by an (N, 4) int64 array."""

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray | Sequence[Sequence[int]] = ()) -> None:
        data = np.array(array, dtype=np.int64).reshape(-1, 4)
        data.setflags(write=False)
        self._array = data

    @classmethod
    def adopt(cls, array: np.ndarray) -> WindowArray:
        """Wrap an (N, 4) int64 array without copying it; the caller hands it over (and must not write to it
        any more: it is made read-only)."""
        if array.dtype != np.int64 or array.ndim != 2 or array.shape[1] != 4:
            raise ValueError(f"an (N, 4) int64 array is needed, got {array.dtype} {array.shape}")
        array.setflags(write=False)
        result = cls.__new__(cls)
        result._array = array
        return result

    @classmethod
    def from_windows(cls, windows: Iterable[Window]) -> WindowArray:
        """From ``Window`` objects (offsets and sizes must be whole pixels)."""
        rows = [(w.col_off, w.row_off, w.width, w.height) for w in windows]
        data = np.array(rows, dtype=np.float64).reshape(-1, 4)
        if not np.array_equal(data, np.round(data)):
            raise ValueError("windows must have whole-pixel offsets and sizes")
        return cls(data.astype(np.int64))

    @classmethod
    def concat(cls, parts: Iterable[np.ndarray | WindowArray]) -> WindowArray:
        arrays = [
            p.array if isinstance(p, WindowArray) else np.asarray(p, np.int64).reshape(-1, 4) for p in parts
        ]
        return cls(np.concatenate(arrays) if arrays else np.empty((0, 4), np.int64))

    @property
    def array(self) -> np.ndarray:
        """(N, 4) int64, read-only: col_off, row_off, width, height."""
        return self._array

    def __len__(self) -> int:
        return len(self._array)

    @overload
    def __getitem__(self, index: int) -> Window: ...

    @overload
    def __getitem__(self, index: slice) -> WindowArray: ...

    def __getitem__(self, index: int | slice | np.ndarray) -> Window | WindowArray:  # type: ignore[override]
        if isinstance(index, (int, np.integer)):
            col, row, width, height = (int(v) for v in self._array[index])
            return Window(col, row, width, height)
        return WindowArray(self._array[index])

    def __iter__(self) -> Iterator[Window]:
        for col, row, width, height in self._array.tolist():
            yield Window(col, row, width, height)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WindowArray):
            return np.array_equal(self._array, other._array)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WindowArray({len(self)} windows)"
