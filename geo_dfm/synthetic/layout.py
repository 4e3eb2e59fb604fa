"""Where each class lies in a synthetic scene: irregular regions, an optional lake and runway.

Layouts:
- ``"patchwork"``: a warped Voronoi mosaic of medium regions (about 90-160 px across) of the chosen
  classes, plus a runway when ``runway`` is among them and the scene is large enough.
- ``"lake"``: large coherent regions for localisation and chip classification tests: one lake covering
  20-40 % of the scene and a few big regions (much larger than a chip) of the other classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from geo_dfm.synthetic.classes import CLASS_NAMES, landcover_class
from geo_dfm.synthetic.noise import pixel_grid, smooth_noise
from geo_dfm.synthetic.textures import RunwayGeometry

LAYOUTS = ("patchwork", "lake")
MIN_RUNWAY_SCENE = 192
"""Scenes smaller than this (pixels, on the short side) get no runway."""


@dataclass(frozen=True)
class Layout:
    """Class id per pixel (H×W uint8) and the runway strip, if any."""

    classes: np.ndarray
    runway: RunwayGeometry | None


def _warped_voronoi(rng: np.random.Generator, shape: tuple[int, int], n_cells: int) -> np.ndarray:
    """Cell index per pixel of a Voronoi mosaic with wiggly, natural-looking boundaries."""
    h, w = shape
    rows, cols = pixel_grid(shape)
    scale = np.sqrt(h * w / n_cells)
    rows = rows + 0.25 * scale * smooth_noise(rng, shape, 0.6 * scale) + 4 * smooth_noise(rng, shape, 9)
    cols = cols + 0.25 * scale * smooth_noise(rng, shape, 0.6 * scale) + 4 * smooth_noise(rng, shape, 9)
    seeds = rng.uniform((0, 0), (h, w), size=(n_cells, 2)).astype(np.float32)
    best = np.full(shape, np.inf, dtype=np.float32)
    cell = np.zeros(shape, dtype=np.int32)
    for index, (r, c) in enumerate(seeds):
        d = (rows - r) ** 2 + (cols - c) ** 2
        closer = d < best
        best[closer] = d[closer]
        cell[closer] = index
    return cell


def _assign(rng: np.random.Generator, n_cells: int, names: list[str]) -> np.ndarray:
    """A class id per cell, using every class at least once when there are enough cells."""
    order = [landcover_class(n).id for n in rng.permutation(names)]
    ids = [order[i % len(order)] for i in range(n_cells)]
    return np.asarray(rng.permutation(ids), dtype=np.uint8)


def _runway(rng: np.random.Generator, shape: tuple[int, int], avoid: np.ndarray | None) -> RunwayGeometry:
    """A runway inside the scene; with ``avoid``, the candidate overlapping it least."""
    h, w = shape
    best, best_overlap = None, np.inf
    for _ in range(12 if avoid is not None else 1):
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.55, 0.85) * min(h, w)
        width = rng.uniform(0.11, 0.16) * min(h, w)
        ex = abs(np.cos(angle)) * length / 2 + abs(np.sin(angle)) * width / 2
        ey = abs(np.sin(angle)) * length / 2 + abs(np.cos(angle)) * width / 2
        centre_row = rng.uniform(ey, max(ey, h - ey))
        centre_col = rng.uniform(ex, max(ex, w - ex))
        candidate = RunwayGeometry(centre_row, centre_col, angle, length, width)
        overlap = 0.0 if avoid is None else float((candidate.mask(shape) & avoid).sum())
        if overlap < best_overlap:
            best, best_overlap = candidate, overlap
    assert best is not None
    return best


def _lake(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """One connected, hole-free lake covering 20-40 % of the scene."""
    h, w = shape
    rows, cols = pixel_grid(shape)
    fraction = rng.uniform(0.24, 0.38)
    centre = rng.uniform(0.3, 0.7, 2) * (h, w)
    angle = rng.uniform(0, np.pi)
    u = (cols - centre[1]) * np.cos(angle) + (rows - centre[0]) * np.sin(angle)
    v = -(cols - centre[1]) * np.sin(angle) + (rows - centre[0]) * np.cos(angle)
    stretch = rng.uniform(1.0, 1.8)
    field = -np.sqrt((u / stretch) ** 2 + (v * stretch) ** 2) / min(h, w)
    field = field + 0.07 * smooth_noise(rng, shape, min(h, w) / 5) + 0.02 * smooth_noise(rng, shape, 12)
    lake = field > np.quantile(field, 1 - fraction)
    labels, n = ndimage.label(lake)
    if n > 1:
        sizes = ndimage.sum(lake, labels, range(1, n + 1))
        lake = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(lake)


def make_layout(rng: np.random.Generator, shape: tuple[int, int], classes: list[str], layout: str) -> Layout:
    """The class map of one scene (class ids of :data:`CLASS_NAMES`)."""
    h, w = shape
    area_classes = [c for c in classes if c != "runway"]
    wants_runway = "runway" in classes and min(h, w) >= MIN_RUNWAY_SCENE
    if layout == "lake" and "water" in area_classes:
        lake = _lake(rng, shape)
        others = [c for c in area_classes if c != "water"] or ["water"]
        n_cells = max(len(others), int(rng.integers(3, 6)))
        cells = _warped_voronoi(rng, shape, n_cells)
        class_map = _assign(rng, n_cells, others)[cells]
        geometry = _runway(rng, shape, lake) if wants_runway else None
        if geometry is not None:
            lake &= ~ndimage.binary_dilation(geometry.mask(shape), iterations=6)
        class_map[lake] = CLASS_NAMES.index("water")
    else:
        n_cells = max(len(area_classes), round(h * w / rng.uniform(110, 160) ** 2))
        cells = _warped_voronoi(rng, shape, n_cells)
        class_map = _assign(rng, n_cells, area_classes)[cells]
        geometry = _runway(rng, shape, None) if wants_runway else None
    if geometry is not None:
        class_map[geometry.mask(shape)] = CLASS_NAMES.index("runway")
    return Layout(class_map.astype(np.uint8), geometry)
