"""RS CLIP models: registry, safe checkpoint loading, the Encoder, prompt sets and label presets.

Light to import: torch and open_clip load only when an encoder is built
(:func:`load_encoder`, :class:`Encoder` are imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geo_dfm.models.presets import get_label_preset, list_label_presets
from geo_dfm.models.prompts import get_templates, list_template_sets
from geo_dfm.models.registry import DEFAULT_MODEL, ModelSpec, get_model_spec, list_model_specs

if TYPE_CHECKING:
    from geo_dfm.models.encoder import Encoder
    from geo_dfm.models.factory import load_encoder

__all__ = [
    "DEFAULT_MODEL",
    "Encoder",
    "ModelSpec",
    "get_label_preset",
    "get_model_spec",
    "get_templates",
    "list_label_presets",
    "list_model_specs",
    "list_template_sets",
    "load_encoder",
]


def __getattr__(name: str) -> Any:
    if name == "load_encoder":
        from geo_dfm.models.factory import load_encoder

        return load_encoder
    if name == "Encoder":
        from geo_dfm.models.encoder import Encoder

        return Encoder
    raise AttributeError(f"module 'geo_dfm.models' has no attribute {name!r}")
