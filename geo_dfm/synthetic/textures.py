"""Per-class textures of the synthetic world (float RGB arrays, roughly 0-255).

Each class has a characteristic texture *and* a range of colours, so a model has to learn both:
water is dark and smooth with ripples, forest a green canopy of crowns, farmland parcels of parallel
furrows in varied orientations, town roofs between a street grid, bare soil a bright grainy ground with
gullies, and a runway a long light strip with white markings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from geo_dfm.synthetic.noise import fractal_noise, pixel_grid, smooth_noise

Texture = Callable[[np.random.Generator, tuple[int, int], tuple[float, float]], np.ndarray]


@dataclass(frozen=True)
class RunwayGeometry:
    """A runway strip in scene pixel coordinates (angle in radians, from the column axis)."""

    centre_row: float
    centre_col: float
    angle: float
    length: float
    width: float

    def local_coordinates(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance along the runway from its start, and signed distance across its centre line."""
        dr, dc = rows - self.centre_row, cols - self.centre_col
        cos, sin = np.float32(np.cos(self.angle)), np.float32(np.sin(self.angle))
        along = dc * cos + dr * sin + np.float32(self.length / 2)
        across = -dc * sin + dr * cos
        return along, across

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean mask of the paved strip on a scene of ``shape``."""
        along, across = self.local_coordinates(*pixel_grid(shape))
        return (along >= 0) & (along < self.length) & (np.abs(across) < self.width / 2)


def _colour(rng: np.random.Generator, palette: list[tuple[int, int, int]], spread: float = 8.0) -> np.ndarray:
    base = np.asarray(palette[rng.integers(len(palette))], dtype=np.float32)
    return base + rng.normal(0.0, spread, 3).astype(np.float32)


def _rotated(rows: np.ndarray, cols: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return cols * cos + rows * sin, -cols * sin + rows * cos


def _shade(
    base: np.ndarray, value: np.ndarray, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    return base[None, None, :] + value[..., None] * np.asarray(tint, dtype=np.float32)


def water(rng: np.random.Generator, shape: tuple[int, int], origin: tuple[float, float]) -> np.ndarray:
    """Dark, smooth water with faint ripples."""
    base = _colour(rng, [(22, 48, 88), (25, 68, 84), (26, 54, 74), (18, 36, 70), (35, 62, 95)])
    rows, cols = pixel_grid(shape, origin)
    along, _ = _rotated(rows, cols, rng.uniform(0, np.pi))
    period = rng.uniform(6, 14)
    ripple = 2.5 * np.sin(2 * np.pi * along / period + 1.5 * smooth_noise(rng, shape, 25))
    value = 7 * smooth_noise(rng, shape, 70) + ripple + rng.normal(0, 1.5, shape).astype(np.float32)
    return _shade(base, value, (0.6, 0.8, 1.0))


def forest(rng: np.random.Generator, shape: tuple[int, int], origin: tuple[float, float]) -> np.ndarray:
    """A canopy of tree crowns with dark gaps between them."""
    base = _colour(rng, [(36, 74, 34), (46, 86, 40), (30, 60, 36), (56, 92, 46), (40, 70, 30)])
    crowns = smooth_noise(rng, shape, rng.uniform(2.5, 4.5))
    value = 24 * np.tanh(1.5 * crowns) + 8 * smooth_noise(rng, shape, 40)
    value -= 18 * (crowns < -1.0)
    return _shade(base, value, (0.7, 1.0, 0.6))


_CROPS = [(82, 132, 56), (196, 176, 96), (150, 120, 80), (140, 166, 90), (112, 86, 60), (170, 150, 70)]


def farmland(rng: np.random.Generator, shape: tuple[int, int], origin: tuple[float, float]) -> np.ndarray:
    """Parcels of parallel furrows; each parcel has its own crop colour, stripe direction and period."""
    rows, cols = pixel_grid(shape, origin)
    u, v = _rotated(rows, cols, rng.uniform(0, np.pi))
    u = u + 4 * smooth_noise(rng, shape, 60)
    v = v + 4 * smooth_noise(rng, shape, 60)
    size_u, size_v = rng.uniform(50, 140), rng.uniform(50, 140)
    iu, iv = np.floor(u / size_u).astype(np.int64), np.floor(v / size_v).astype(np.int64)
    parcel = (iu * 7919 + iv * 104729) % 997
    n = 997
    colours = np.stack([_colour(rng, _CROPS, 10) for _ in range(n)])
    along_u = rng.random(n) < 0.5
    period = rng.uniform(4, 10, n).astype(np.float32)
    amplitude = rng.uniform(10, 26, n).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    coord = np.where(along_u[parcel], u, v)
    stripes = amplitude[parcel] * np.sin(2 * np.pi * coord / period[parcel] + phase[parcel])
    image = colours[parcel] + (stripes + 4 * smooth_noise(rng, shape, 30))[..., None]
    border = (np.mod(u, size_u) < 2.0) | (np.mod(v, size_v) < 2.0)
    image[border] = image[border] * 0.6 + np.float32(40)
    return image


_ROOFS = [(168, 76, 60), (184, 98, 72), (142, 142, 148), (204, 198, 188), (96, 96, 104), (122, 72, 56)]


def town(rng: np.random.Generator, shape: tuple[int, int], origin: tuple[float, float]) -> np.ndarray:
    """Buildings on lots between a street grid of random orientation and block size."""
    rows, cols = pixel_grid(shape, origin)
    u, v = _rotated(rows, cols, rng.uniform(0, np.pi / 2))
    block = rng.uniform(26, 48)
    street = rng.uniform(3, 6)
    lots_u, lots_v = int(rng.integers(2, 4)), int(rng.integers(1, 3))
    lu, lv = np.mod(u, block), np.mod(v, block)
    lot_size_u, lot_size_v = (block - street) / lots_u, (block - street) / lots_v
    ku = np.clip((lu - street) // lot_size_u, 0, lots_u - 1)
    kv = np.clip((lv - street) // lot_size_v, 0, lots_v - 1)
    lot = (np.floor(u / block) * 4 + ku).astype(np.int64) * 7919 + (np.floor(v / block) * 4 + kv).astype(
        np.int64
    )
    lot = lot % 1009
    roofs = np.stack([_colour(rng, _ROOFS, 12) for _ in range(1009)])
    built = rng.random(1009) < 0.85
    in_u = (lu - street) - ku * lot_size_u
    in_v = (lv - street) - kv * lot_size_v
    margin = 1.5
    on_roof = (in_u > margin) & (in_u < lot_size_u - margin) & (in_v > margin) & (in_v < lot_size_v - margin)
    ridge = np.where(in_v < lot_size_v / 2, 12.0, -12.0).astype(np.float32)
    image = roofs[lot] + ridge[..., None]
    yard = np.asarray([96, 118, 78], dtype=np.float32) + 10 * smooth_noise(rng, shape, 6)[..., None]
    image = np.where((on_roof & built[lot])[..., None], image, yard)
    asphalt = np.float32(rng.uniform(85, 120))
    is_street = (lu < street) | (lv < street)
    image[is_street] = asphalt + rng.normal(0, 3, (int(is_street.sum()), 1)).astype(np.float32)
    return image


def bare_soil(rng: np.random.Generator, shape: tuple[int, int], origin: tuple[float, float]) -> np.ndarray:
    """Bright grainy ground with erosion gullies and scattered stones."""
    base = _colour(rng, [(186, 156, 116), (170, 130, 90), (196, 172, 132), (160, 122, 86), (202, 150, 102)])
    value = fractal_noise(rng, shape, (50, 8, 2), (10, 7, 5))
    gullies = np.abs(smooth_noise(rng, shape, 22)) < 0.08
    value -= 22 * gullies
    value -= 35 * (rng.random(shape) < 0.006)
    return _shade(base, value, (1.0, 0.95, 0.85))


def runway(geometry: RunwayGeometry) -> Texture:
    """A concrete strip with edge lines, a dashed centre line, threshold bars and touchdown marks."""

    def render(rng: np.random.Generator, shape: tuple[int, int], origin: tuple[float, float]) -> np.ndarray:
        along, across = geometry.local_coordinates(*pixel_grid(shape, origin))
        half = geometry.width / 2
        grey = np.float32(rng.uniform(150, 195))
        value = grey + 4 * smooth_noise(rng, shape, 12) + rng.normal(0, 2, shape).astype(np.float32)
        touchdown = (np.abs(across) < half * 0.5) & (
            (np.abs(along - 0.2 * geometry.length) < 40) | (np.abs(along - 0.8 * geometry.length) < 40)
        )
        value -= 30 * touchdown * (smooth_noise(rng, shape, 3) > 0.3)
        white = np.zeros(shape, dtype=bool)
        white |= (np.abs(across) < 1.2) & (np.mod(along, 30) < 18)
        white |= (np.abs(across) > half - 4) & (np.abs(across) < half - 2)
        ends = (along < 22) | (along > geometry.length - 22)
        white |= (
            ends
            & (np.abs(across) < half - 6)
            & (np.mod(across, 7) < 3.5)
            & (np.abs(along - geometry.length / 2) > geometry.length / 2 - 20)
        )
        marks = (np.abs(np.abs(along - geometry.length / 2) - 0.35 * geometry.length) < 12) & (
            np.abs(np.abs(across) - half * 0.45) < 3
        )
        white |= marks
        value = np.where(white, np.float32(238), value)
        return np.repeat(value[..., None], 3, axis=2) + _colour(rng, [(0, 0, 0)], 3)[None, None, :]

    return render


CLASS_TEXTURES: dict[str, Texture] = {
    "water": water,
    "forest": forest,
    "farmland": farmland,
    "town": town,
    "bare soil": bare_soil,
}
"""Textures of the area classes (the runway needs its geometry: :func:`runway`)."""
