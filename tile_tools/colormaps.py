"""Colour maps for heatmap previews and default colours for class rasters (no matplotlib needed)."""

from __future__ import annotations

import colorsys

import numpy as np

# matplotlib's "jet" segment data (x, value) per channel: blue → cyan → yellow → red, like OpenCV's JET.
_JET = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}
# viridis at 0, 0.1, ..., 1 (matplotlib's values); linear in between.
_VIRIDIS = [
    "440154",
    "482475",
    "414487",
    "355f8d",
    "2a788e",
    "21918c",
    "22a884",
    "44bf70",
    "7ad151",
    "bddf26",
    "fde725",
]
COLORMAPS: tuple[str, ...] = ("jet", "viridis")

# Qualitative colours for classes (tab10 then its light companions).
_CLASS_COLOURS = [
    "1f77b4",
    "ff7f0e",
    "2ca02c",
    "d62728",
    "9467bd",
    "8c564b",
    "e377c2",
    "7f7f7f",
    "bcbd22",
    "17becf",
    "aec7e8",
    "ffbb78",
    "98df8a",
    "ff9896",
    "c5b0d5",
    "c49c94",
    "f7b6d2",
    "c7c7c7",
    "dbdb8d",
    "9edae5",
]


def _hex(code: str) -> tuple[int, int, int]:
    return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)


def lookup_table(name: str) -> np.ndarray:
    """(256, 3) uint8 RGB table of colour map ``name`` (``"jet"`` or ``"viridis"``)."""
    x = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        channels = [np.interp(x, *zip(*_JET[c], strict=True)) for c in ("red", "green", "blue")]
        table = np.stack(channels, axis=1)
    elif name == "viridis":
        anchors = np.array([_hex(c) for c in _VIRIDIS], dtype=np.float64) / 255.0
        stops = np.linspace(0.0, 1.0, len(anchors))
        table = np.stack([np.interp(x, stops, anchors[:, c]) for c in range(3)], axis=1)
    else:
        raise ValueError(f"unknown colour map {name!r}; choose one of {COLORMAPS}")
    return np.rint(table * 255.0).astype(np.uint8)


def apply_colormap(values: np.ndarray, name: str = "jet") -> np.ndarray:
    """Colour (H, W) values in [0, 1] (NaN → 0) as (H, W, 3) uint8 RGB, level = uint8(255·v)."""
    levels = (255.0 * np.nan_to_num(np.clip(values, 0.0, 1.0), nan=0.0)).astype(np.uint8)
    return lookup_table(name)[levels]


def class_colours(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct RGB colours: 20 qualitative ones, then evenly spread hues."""
    colours = [_hex(c) for c in _CLASS_COLOURS[:count]]
    for i in range(len(colours), count):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.9)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours
