"""Captions for label-only data (map labels, ImageFolder classes): the RS5M recipe's template captions.

A caption is one template of a set (:func:`geo_dfm.models.prompts.get_templates`) filled with the
label; with a ground sampling distance it ends in "…, <gsd> m per pixel." Which templates a pair
gets is drawn from a seeded generator, so a run is reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from geo_dfm.models.prompts import get_templates
from tile_tools.errors import InputError


def caption(template: str, label: str, gsd: float | None = None) -> str:
    """``template`` filled with ``label``; ``gsd`` (metres per pixel) appended when given."""
    text = template.format(label)
    if gsd is None:
        return text
    return f"{text.rstrip('. ')}, {gsd:g} m per pixel."


class CaptionMaker:
    """Draws distinct templates per item from ``templates`` (a set name, file or list)."""

    def __init__(self, templates: str | Sequence[str], gsd: float | None = None, seed: int = 0) -> None:
        self.templates = get_templates(templates)
        if gsd is not None and not gsd > 0:
            raise InputError("gsd", f"ground sampling distance must be positive, got {gsd}")
        self.gsd = gsd
        self.seed = seed

    def draw(self, label: str, count: int, rng: np.random.Generator) -> list[str]:
        """``count`` captions of ``label`` from distinct templates (repeats only past the set's size)."""
        if count < 1:
            raise InputError("captions_per_chip", f"needs at least 1 caption, got {count}")
        picks = rng.permutation(len(self.templates))[: min(count, len(self.templates))].tolist()
        while len(picks) < count:
            picks.append(int(rng.integers(len(self.templates))))
        return [caption(self.templates[i], label, self.gsd) for i in picks]

    def for_key(self, label: str, key: str) -> str:
        """One caption of ``label`` fixed by ``key`` (e.g. a file path) and the seed: stable across runs
        and independent of the order items are visited in."""
        digest = hashlib.sha256(f"{self.seed}\0{key}".encode()).digest()
        index = int.from_bytes(digest[:8], "little") % len(self.templates)
        return caption(self.templates[index], label, self.gsd)
