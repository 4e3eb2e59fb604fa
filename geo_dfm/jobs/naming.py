"""File names derived from user text (queries become ``<slug>.tif``)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_NOT_SAFE = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_length: int = 60) -> str:
    """Lower-case ASCII letters and digits joined by ``_`` (``"query"`` if nothing is left)."""
    slug = _NOT_SAFE.sub("_", text.lower()).strip("_")[:max_length].strip("_")
    return slug or "query"


def unique_slugs(texts: Sequence[str]) -> list[str]:
    """One slug per text, made unique with ``_2``, ``_3``... in order of appearance."""
    seen: dict[str, int] = {}
    slugs = []
    for text in texts:
        base = slugify(text)
        count = seen.get(base, 0) + 1
        seen[base] = count
        slug = base if count == 1 else f"{base}_{count}"
        while slug in seen and slug != base:
            count += 1
            slug = f"{base}_{count}"
        seen.setdefault(slug, 1)
        slugs.append(slug)
    return slugs
