"""Conversion of any band data to 8 bit, with parameters fixed once per scene.

A per-chip min–max or percentile stretch makes contrast jump from chip to chip; here the
percentiles are computed once from a decimated read of the whole scene (overviews when the
file has them) and every chip is converted with the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRETCH_MODES = ("auto", "none", "percentile")


@dataclass(frozen=True)
class Stretch:
    """Linear map of each band from ``[low, high]`` to ``[0, 255]`` (clipped, rounded).

    ``low``/``high`` hold one value per band; ``None`` means no stretch: values are clipped to
    0–255 and cast (8-bit data passes through unchanged).
    """

    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    @property
    def is_identity(self) -> bool:
        return self.low is None

    def apply(self, bands: np.ndarray) -> np.ndarray:
        """bands×H×W array of any dtype → bands×H×W uint8."""
        if self.low is None or self.high is None:
            if bands.dtype == np.uint8:
                return bands
            return np.clip(np.rint(bands.astype(np.float64)), 0, 255).astype(np.uint8)
        low = np.asarray(self.low, dtype=np.float64)[:, None, None]
        gain = 255.0 / (np.asarray(self.high, dtype=np.float64)[:, None, None] - low)
        scaled = bands.astype(np.float64) - low
        scaled *= gain
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0, 255, out=scaled)
        return scaled.astype(np.uint8)


def percentile_stretch(
    sample: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)
) -> Stretch:
    """The ``percentiles`` of each band over the valid pixels of a bands×H×W ``sample``.

    A band whose two percentiles coincide gets ``high = low + 1`` (so a flat band maps to 0).
    """
    lows, highs = [], []
    for band in sample:
        values = band[valid].astype(np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            low, high = 0.0, 255.0
        else:
            low, high = (float(v) for v in np.percentile(values, percentiles))
        if high <= low:
            high = low + 1.0
        lows.append(low)
        highs.append(high)
    return Stretch(tuple(lows), tuple(highs))
