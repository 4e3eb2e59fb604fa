"""Class names for zero-shot classification: from ``--labels``, ``--labels-file`` or ``--preset``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tile_tools.errors import InputError

#: A class raster is uint8 with 255 for "unlabelled": at most 254 classes.
MAX_LABELS = 254


def check_labels(labels: Sequence[str], source: str) -> tuple[str, ...]:
    """Stripped labels; an empty list, an empty label or a duplicate is an :class:`InputError`."""
    cleaned = tuple(label.strip() for label in labels)
    if not cleaned:
        raise InputError(source, "no class label given")
    if any(not label for label in cleaned):
        raise InputError(source, "empty class label")
    seen: set[str] = set()
    duplicates = [label for label in cleaned if label.lower() in seen or seen.add(label.lower())]
    if duplicates:
        raise InputError(source, f"duplicate class labels: {', '.join(sorted(set(duplicates)))}")
    if len(cleaned) < 2:
        raise InputError(source, "zero-shot classification needs at least two class labels")
    return cleaned


def read_labels_file(path: str) -> tuple[str, ...]:
    """One label per line; blank lines and ``#`` comments are ignored."""
    file = Path(path)
    if not file.is_file():
        raise InputError(path, "labels file not found")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the labels file ({exc})") from None
    lines = [line.strip() for line in text.splitlines()]
    labels = [line for line in lines if line and not line.startswith("#")]
    if not labels:
        raise InputError(path, "labels file is empty")
    return check_labels(labels, path)


def resolve_labels(
    labels: Sequence[str] | None, labels_file: str | None, preset: str | None
) -> tuple[str, ...]:
    """The class labels from exactly one of the three sources (``labels`` as a sequence of names)."""
    given = [
        name
        for name, value in (("labels", labels), ("labels_file", labels_file), ("preset", preset))
        if value is not None
    ]
    if len(given) != 1:
        raise InputError(
            "labels",
            "give exactly one of: class labels, a labels file or a preset"
            + (f" (got {', '.join(given)})" if given else ""),
        )
    if labels is not None:
        return check_labels(labels, "labels")
    if labels_file is not None:
        return read_labels_file(labels_file)
    from geo_dfm.models.presets import get_label_preset

    return check_labels(tuple(get_label_preset(preset)), "preset")


def split_labels(text: str | None) -> tuple[str, ...] | None:
    """``"water,forest"`` → ``("water", "forest")`` (the CLI's ``--labels``)."""
    return None if text is None else tuple(text.split(","))
