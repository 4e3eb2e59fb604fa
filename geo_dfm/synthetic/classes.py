"""The synthetic world's land-cover classes, their synonyms and the captions the toy model learns.

One place for everything that names a class: scene rasters store the class *id* (the index in
:data:`LANDCOVER_CLASSES`), tests and demos query by :attr:`LandCoverClass.name` or a synonym.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geo_dfm.models.prompts import TEMPLATE_SETS

NODATA_CLASS = 255
"""Truth-raster value outside valid data (the optional nodata border)."""


@dataclass(frozen=True)
class LandCoverClass:
    """A land-cover class of the synthetic world."""

    id: int
    name: str
    synonyms: tuple[str, ...]
    phrases: tuple[str, ...]
    colour: tuple[int, int, int]
    """A representative RGB colour (legends, colour tables), not the rendered one."""

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name followed by its synonyms."""
        return (self.name, *self.synonyms)


LANDCOVER_CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(
        0,
        "water",
        ("lake", "water body", "open water"),
        ("a calm lake", "dark blue water", "the surface of a lake", "a body of water"),
        (30, 60, 110),
    ),
    LandCoverClass(
        1,
        "forest",
        ("woodland", "trees", "dense forest"),
        ("dense tree canopy", "a green forest", "a patch of woodland", "many trees"),
        (40, 90, 40),
    ),
    LandCoverClass(
        2,
        "farmland",
        ("fields", "farm fields", "cropland", "agricultural land"),
        ("fields with parallel furrows", "striped crop fields", "farmland parcels", "ploughed fields"),
        (170, 160, 80),
    ),
    LandCoverClass(
        3,
        "town",
        ("residential area", "buildings", "houses", "urban area"),
        ("houses along a street grid", "roofs of buildings", "a small town", "dense residential buildings"),
        (170, 90, 80),
    ),
    LandCoverClass(
        4,
        "bare soil",
        ("bare land", "barren land", "bare ground"),
        ("dry bare soil", "brown bare earth", "an area of bare ground", "sandy barren land"),
        (190, 160, 120),
    ),
    LandCoverClass(
        5,
        "runway",
        ("airport runway", "airstrip", "airport"),
        ("a long paved runway", "a runway with white markings", "an airport runway strip", "a landing strip"),
        (200, 200, 200),
    ),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in LANDCOVER_CLASSES)
"""Canonical class names in id order: water, forest, farmland, town, bare soil, runway."""


def landcover_class(name: str) -> LandCoverClass:
    """The class called ``name`` (canonical name or synonym, case-insensitive)."""
    key = name.strip().lower()
    for cls in LANDCOVER_CLASSES:
        if key in cls.names:
            return cls
    raise KeyError(f"unknown land-cover class {name!r}; known: {', '.join(CLASS_NAMES)}")


RS105_TEMPLATES: tuple[str, ...] = TEMPLATE_SETS["rs105"]
"""The paper's 105 remote-sensing templates (from :mod:`geo_dfm.models.prompts`)."""

_EXTRA_TEMPLATES = (
    *TEMPLATE_SETS["skyclip"],
    "{} seen from above",
    "an area of {}",
    "top view of {}",
)


def sample_caption(cls: LandCoverClass, rng: np.random.Generator) -> str:
    """One training caption for ``cls``: a bare name, a phrase or a templated sentence."""
    u = rng.random()
    name = cls.name if rng.random() < 0.6 else cls.synonyms[rng.integers(len(cls.synonyms))]
    if u < 0.25:
        return name
    if u < 0.35:
        return cls.phrases[rng.integers(len(cls.phrases))]
    if u < 0.45:
        return _EXTRA_TEMPLATES[rng.integers(len(_EXTRA_TEMPLATES))].format(name)
    return RS105_TEMPLATES[rng.integers(len(RS105_TEMPLATES))].format(name)
