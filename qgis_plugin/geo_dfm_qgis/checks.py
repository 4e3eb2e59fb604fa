"""Input checks made before geo-dfm loads a model: chip size, overlap and bands against the scenes.

The rules follow geo-dfm's own (``tile_tools.units.Length``, the chip planner): a chip size is pixels
(``224``, ``224px``) or metres (``100m``); an overlap is also a fraction (``0.25``) or percent
(``25%``) and must leave a step between chips; a chip larger than a scene is refused unless the method
takes the whole scene as one window (SeLo). Problems name the field they concern (``chip_size``,
``overlap``, ``bands``), so a form shows them next to it. Pure Python; no Qt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from geo_dfm_qgis.jobs import Problem

_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|m|%)?\s*$")


@dataclass(frozen=True)
class Length:
    """A length as geo-dfm reads it: ``unit`` is ``px``, ``m`` or ``fraction``."""

    value: float
    unit: str


@dataclass(frozen=True)
class SceneShape:
    """What the checks need of a scene: its name, size in pixels, bands, and metres per pixel (``None``
    when its CRS is not in metres)."""

    name: str
    width: int
    height: int
    bands: int
    metres_per_pixel: float | None = None


def parse_length(text: str) -> Length | None:
    """``"224"`` → 224 px, ``"32px"``, ``"100m"``, ``"0.25"``/``"25%"`` → a fraction; ``None`` if unreadable."""
    match = _LENGTH.match(text)
    if not match:
        return None
    value, suffix = float(match.group(1)), match.group(2)
    if suffix == "%":
        return Length(value / 100.0, "fraction")
    if suffix == "m":
        return Length(value, "m")
    decimal = any(mark in match.group(1) for mark in ".eE")
    if suffix == "px" or value > 1 or (value == 1 and not decimal):
        return Length(value, "px")
    return Length(value, "fraction")


def _pixels(length: Length, scene: SceneShape, gsd: float | None) -> float | None:
    """``length`` in pixels of the grid geo-dfm chips ``scene`` on (``None`` when that needs a CRS in metres)."""
    if length.unit == "px":
        return length.value
    mpp = gsd or scene.metres_per_pixel
    return length.value / mpp if mpp else None


def _grid_size(scene: SceneShape, gsd: float | None) -> tuple[int, int] | None:
    if not gsd:
        return scene.width, scene.height
    if not scene.metres_per_pixel:
        return None
    factor = scene.metres_per_pixel / gsd
    return max(1, math.ceil(scene.width * factor)), max(1, math.ceil(scene.height * factor))


def chip_problems(
    chip_size: str,
    overlap: str,
    scenes: Sequence[SceneShape],
    default_chip: int | None = None,
    gsd: float | None = None,
    whole_scene_window: bool = False,
) -> list[Problem]:
    """What is wrong with the chip size and overlap for these scenes ('' chip size: ``default_chip``
    pixels, the model's input size). ``whole_scene_window``: a chip larger than the scene is allowed."""
    problems: list[Problem] = []
    size = parse_length(chip_size) if chip_size.strip() else None
    if chip_size.strip():
        if size is None or size.unit == "fraction":
            return [Problem("chip_size", "give the chip size in pixels (224) or metres (100m)")]
        if size.value <= 0:
            return [Problem("chip_size", "the chip size must be larger than 0")]
    elif default_chip:
        size = Length(float(default_chip), "px")
    gap = parse_length(overlap) if overlap.strip() else Length(0.0, "fraction")
    if gap is None:
        problems.append(Problem("overlap", "give the overlap as 0.25, 25%, 32px or 10m"))
    elif gap.unit == "fraction" and gap.value >= 1:
        problems.append(Problem("overlap", "an overlap of 100% or more leaves no step between chips"))
    if size is None:
        return problems
    for scene in scenes:
        chip_px = _pixels(size, scene, gsd)
        grid = _grid_size(scene, gsd)
        if chip_px is None or grid is None:
            continue
        chip = round(chip_px)
        if chip < 1:
            problems.append(Problem("chip_size", f"the chip is smaller than one pixel of {scene.name}"))
            break
        if not whole_scene_window and chip > min(grid):
            problems.append(
                Problem(
                    "chip_size",
                    f"a {chip} px chip is larger than {scene.name} ({grid[0]}×{grid[1]} px); "
                    f"use at most {min(grid)} px",
                )
            )
            break
        if gap is not None and gap.unit != "fraction":
            gap_px = _pixels(gap, scene, gsd)
            if gap_px is not None and chip - round(gap_px) < 1:
                problems.append(
                    Problem(
                        "overlap", f"an overlap of {overlap.strip()} leaves no step between {chip} px chips"
                    )
                )
                break
    return problems


def band_problems(bands: str, scenes: Sequence[SceneShape]) -> list[Problem]:
    """Bands (``"4,3,2"``, 1-based) that some scene does not have."""
    if not bands.strip():
        return []
    try:
        chosen = [int(part) for part in bands.split(",") if part.strip()]
    except ValueError:
        return [Problem("bands", "give band numbers, e.g. 4,3,2")]
    if len(chosen) not in (1, 3):
        return [Problem("bands", "choose one band (grey) or three (red, green, blue)")]
    for scene in scenes:
        missing = [band for band in chosen if not 1 <= band <= scene.bands]
        if missing:
            return [
                Problem(
                    "bands",
                    f"{scene.name} has {scene.bands} band{'s' if scene.bands != 1 else ''}; "
                    f"band {missing[0]} does not exist",
                )
            ]
    return []
