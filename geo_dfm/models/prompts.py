"""Prompt template sets for zero-shot labels: the paper's 105 RS templates, RemoteCLIP, SkyCLIP, yours.

A template is a sentence with one ``{}`` where the class name goes. The class embedding of a
label is the mean of its *un-normalised* template embeddings, L2-normalised once
(:meth:`geo_dfm.models.encoder.Encoder.class_embeddings`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from geo_dfm.errors import InputError

_RS_KINDS = (("a", "remote sensing image"), ("an", "aerial image"), ("a", "satellite image"))
_QUALITY_ADJECTIVES = (
    "low resolution",
    "bad",
    "cropped",
    "bright",
    "dark",
    "close-up",
    "black and white",
    "jpeg corrupted",
    "blurry",
    "good",
)
_OBJECT_ADJECTIVES = ("large", "nice", "small", "weird", "cool")


def _rs105() -> list[str]:
    """3 image kinds × 35 variants, as derived in ``../shared/specs/models.md``."""
    templates: list[str] = []
    for article, kind in _RS_KINDS:
        head = f"{article} {kind}"
        templates += [
            f"{head} of many {{}}.",
            f"{head} of a {{}}.",
            f"{head} of the {{}}.",
            f"{head} of the hard to see {{}}.",
            f"{head} of a hard to see {{}}.",
        ]
        for adjective in _QUALITY_ADJECTIVES:
            templates += [f"a {adjective} {kind} of the {{}}.", f"a {adjective} {kind} of a {{}}."]
        for adjective in _OBJECT_ADJECTIVES:
            templates += [f"{head} of the {adjective} {{}}.", f"{head} of a {adjective} {{}}."]
    return templates


TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "rs105": tuple(_rs105()),
    "remoteclip": ("a satellite photo of {}.",),
    "skyclip": ("a satellite photo of {}.", "a satellite image of {}"),
    "none": ("{}",),
}


def list_template_sets() -> list[str]:
    """Names accepted by :func:`get_templates`."""
    return list(TEMPLATE_SETS)


def check_template(template: str, source: str = "templates") -> str:
    """Return ``template`` stripped if it has exactly one ``{}`` and no other braces."""
    text = template.strip()
    if text.count("{}") != 1 or "{" in text.replace("{}", "") or "}" in text.replace("{}", ""):
        raise InputError(
            source, f"template {template!r} must contain exactly one '{{}}' (where the class name goes)"
        )
    return text


def read_template_file(path: str | os.PathLike[str]) -> list[str]:
    """Templates from a UTF-8 text file, one per line; blank lines and ``#`` comments are skipped."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(file, f"cannot read the template file: {exc}") from exc
    templates = [
        check_template(line, f"{file}:{number}")
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not templates:
        raise InputError(file, "the template file has no templates (one per line, each with '{}')")
    return templates


def get_templates(name_or_list: str | os.PathLike[str] | Sequence[str]) -> list[str]:
    """Templates from a set name (``rs105``, ``remoteclip``, ``skyclip``, ``none``), a text file,
    a single template string containing ``{}``, or a list of templates."""
    if isinstance(name_or_list, os.PathLike):
        return read_template_file(name_or_list)
    if isinstance(name_or_list, str):
        key = name_or_list.strip().lower()
        if key in TEMPLATE_SETS:
            return list(TEMPLATE_SETS[key])
        if "{}" in name_or_list:
            return [check_template(name_or_list)]
        if Path(name_or_list).is_file():
            return read_template_file(name_or_list)
        raise InputError(
            "--templates",
            f"{name_or_list!r} is neither a template set ({', '.join(TEMPLATE_SETS)}), "
            "a template containing '{}', nor an existing text file",
        )
    templates = [check_template(str(item)) for item in name_or_list]
    if not templates:
        raise InputError("--templates", "the template list is empty")
    return templates


_SEPARATORS = re.compile(r"[_/]+")


def normalize_class_name(name: str) -> str:
    """Class name as the benchmarks feed it: ``_`` and ``/`` become spaces, lower case, single spaces."""
    return " ".join(_SEPARATORS.sub(" ", name).lower().split())


def fill_templates(label: str, templates: Sequence[str]) -> list[str]:
    """The prompts of one label: every template with the normalised class name inserted."""
    name = normalize_class_name(label)
    return [template.replace("{}", name) for template in templates]
