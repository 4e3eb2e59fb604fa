"""Scratch arrays of scene size that live on disk, not in memory.

Small arrays are ordinary numpy arrays; above ``in_memory_bytes`` they are memory maps of an
unnamed temporary file (deleted by the OS when the array is garbage-collected), so the operating
system pages them to disk instead of the process holding them.
"""

from __future__ import annotations

import tempfile

import numpy as np

#: Arrays up to this size stay in memory.
IN_MEMORY_BYTES = 64 * 1024 * 1024


def scratch_array(shape: tuple[int, ...], dtype: np.dtype | type, in_memory_bytes: int = IN_MEMORY_BYTES):
    """A zero-filled array of ``shape``/``dtype``: in memory when small, a disk-backed memmap otherwise."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size <= in_memory_bytes or size == 0:
        return np.zeros(shape, dtype)
    handle = tempfile.TemporaryFile(prefix="geo-dfm-scratch-")  # noqa: SIM115 (owned by the memmap)
    return np.memmap(handle, dtype=dtype, mode="w+", shape=shape)
