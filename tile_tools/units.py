"""Lengths as users write them: pixels, metres, or a fraction of the chip.

``Length.parse("224")`` → 224 pixels, ``"32px"`` → 32 pixels, ``"100m"`` → 100 metres,
``"0.25"`` or ``"25%"`` → a quarter of the chip (overlaps only). A bare number below 1 is a
fraction, and so is ``"1.0"`` (a decimal written with a point or exponent, at most 1: 100 %); a bare
whole number of 1 or more (``"1"``, ``"32"``) and any other bare number above 1 is pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tile_tools.errors import InputError

Unit = Literal["px", "m", "fraction"]

_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|m|%)?\s*$")


@dataclass(frozen=True)
class Length:
    """A length in pixels, metres or as a fraction of the chip size."""

    value: float
    unit: Unit

    @classmethod
    def parse(cls, text: str | float | int, name: str = "length") -> Length:
        """Parse ``"224"``, ``"32px"``, ``"100m"``, ``"0.25"`` or ``"25%"``; ``name`` is used in errors."""
        if isinstance(text, Length):
            return text
        match = _PATTERN.match(str(text))
        if not match:
            raise InputError(
                name,
                f"cannot read {text!r} as a length (examples: 224, 32px, 100m, 0.25, 25%)",
            )
        value, suffix = float(match.group(1)), match.group(2)
        if suffix == "%":
            return cls(value / 100.0, "fraction")
        if suffix == "m":
            return cls(value, "m")
        decimal = any(mark in match.group(1) for mark in ".eE")
        if suffix == "px" or value > 1 or (value == 1 and not decimal):
            return cls(value, "px")
        return cls(value, "fraction")

    @property
    def is_metric(self) -> bool:
        """True when converting to pixels needs the ground resolution."""
        return self.unit == "m"

    def to_pixels(self, metres_per_pixel: float | None, chip_pixels: float | None = None) -> float:
        """This length in pixels of a grid with ``metres_per_pixel`` (for metres) or of a chip (fractions)."""
        if self.unit == "px":
            return self.value
        if self.unit == "m":
            if not metres_per_pixel:
                raise ValueError(f"{self}: metres need the grid's ground resolution")
            return self.value / metres_per_pixel
        if chip_pixels is None:
            raise ValueError(f"{self}: a fraction needs the chip size")
        return self.value * chip_pixels

    def describe(self) -> str:
        """For messages: ``"25%"`` for fractions, ``"32px"``, ``"100m"``."""
        if self.unit == "fraction":
            return f"{self.value * 100:g}%"
        return f"{self.value:g}{self.unit}"

    def __str__(self) -> str:
        if self.unit == "fraction":
            return f"{self.value:g}"
        return f"{self.value:g}{self.unit}"


def parse_lengths(text: str, name: str = "scales") -> tuple[Length, ...]:
    """Parse a comma-separated list such as ``"256,512,768"`` or ``"50m,100m"``."""
    parts = [part for part in str(text).split(",") if part.strip()]
    if not parts:
        raise InputError(name, f"no length in {text!r}")
    return tuple(Length.parse(part, name) for part in parts)


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """Parse ``"4,3,2"`` into 1-based band indexes (``None``/empty: automatic choice)."""
    if text is None or not str(text).strip():
        return None
    try:
        bands = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise InputError("bands", f"cannot read {text!r} as band numbers (example: 4,3,2)") from None
    if len(bands) not in (1, 3):
        raise InputError("bands", f"give one band (grey) or three bands (RGB), got {text!r}")
    return bands
