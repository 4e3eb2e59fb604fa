"""Smooth random fields: the raw material of synthetic textures and region boundaries."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Zero-mean, unit-variance noise whose features are about ``cell`` pixels wide.

    A random lattice with one value per ``cell`` pixels is interpolated with cubic splines.
    """
    h, w = shape
    cell = max(float(cell), 1.0)
    lattice = rng.standard_normal((int(h / cell) + 4, int(w / cell) + 4))
    rows = (np.arange(h, dtype=np.float32) / cell + 1.5)[:, None]
    cols = (np.arange(w, dtype=np.float32) / cell + 1.5)[None, :]
    coords = np.stack(np.broadcast_arrays(rows, cols))
    field = ndimage.map_coordinates(lattice, coords, order=3, mode="nearest").astype(np.float32)
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], cells: tuple[float, ...], gains: tuple[float, ...]
) -> np.ndarray:
    """A weighted sum of :func:`smooth_noise` octaves (one per cell size)."""
    total = np.zeros(shape, dtype=np.float32)
    for cell, gain in zip(cells, gains, strict=True):
        total += gain * smooth_noise(rng, shape, cell)
    return total


def pixel_grid(
    shape: tuple[int, int], origin: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates (float32, broadcastable) of a box whose top-left pixel is ``origin``."""
    h, w = shape
    rows = np.arange(h, dtype=np.float32)[:, None] + np.float32(origin[0])
    cols = np.arange(w, dtype=np.float32)[None, :] + np.float32(origin[1])
    return rows, cols
