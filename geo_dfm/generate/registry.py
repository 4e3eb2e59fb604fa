"""The registered text-to-image models: one :class:`GeneratorSpec` per published pipeline folder.

GeoRSSD (Hugging Face ``Zilun/GeoRSSD``, Apache-2.0) is Stable Diffusion 2.1 fine-tuned on RS5M, the
seed paper's image-text set: ``checkpoint/1p/<step>/`` on 1 % of it, ``checkpoint/20p/<step>/`` on
20 %. Each folder is a complete diffusers ``StableDiffusionPipeline`` (``model_index.json``, ``unet``,
``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``, ``feature_extractor``; DDIM scheduler, no
safety checker). This module imports nothing heavy.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from geo_dfm.errors import InputError

DEFAULT_GENERATOR = "georssd-20p"
_GEORSSD_REPO = "Zilun/GeoRSSD"
_GEORSSD_LICENCE = "GeoRSSD weights Apache-2.0 (model card); built on Stable Diffusion 2.1."


@dataclass(frozen=True)
class GeneratorSpec:
    """Where a diffusers pipeline folder is published: ``hf_repo`` + ``subfolder`` at ``revision``."""

    name: str
    hf_repo: str
    subfolder: str
    description: str
    licence: str
    base: str
    revision: str = "main"

    @property
    def source(self) -> str:
        """One line saying where the pipeline comes from."""
        return f"https://huggingface.co/{self.hf_repo} folder {self.subfolder}"

    def describe(self) -> dict[str, str]:
        """The spec as plain data (for ``summary.json``)."""
        return {
            "name": self.name,
            "hf_repo": self.hf_repo,
            "subfolder": self.subfolder,
            "revision": self.revision,
            "base": self.base,
            "licence": self.licence,
            "description": self.description,
        }


def _georssd(name: str, share: str, step: int, description: str) -> GeneratorSpec:
    return GeneratorSpec(
        name=name,
        hf_repo=_GEORSSD_REPO,
        subfolder=f"checkpoint/{share}/{step}",
        description=description,
        licence=_GEORSSD_LICENCE,
        base="Stable Diffusion 2.1",
    )


_SPECS: tuple[GeneratorSpec, ...] = (
    _georssd(
        "georssd-20p",
        "20p",
        22000,
        "GeoRSSD: Stable Diffusion 2.1 fine-tuned on 20 % of RS5M (step 22000, the latest published).",
    ),
    _georssd(
        "georssd-20p-16000",
        "20p",
        16000,
        "GeoRSSD: Stable Diffusion 2.1 fine-tuned on 20 % of RS5M, earlier checkpoint (step 16000).",
    ),
    _georssd(
        "georssd-1p",
        "1p",
        17000,
        "GeoRSSD: Stable Diffusion 2.1 fine-tuned on 1 % of RS5M (step 17000).",
    ),
)
_BY_NAME = {spec.name: spec for spec in _SPECS}


def list_generator_specs() -> tuple[GeneratorSpec, ...]:
    """Every registered text-to-image model, default first."""
    return _SPECS


def get_generator_spec(name: str) -> GeneratorSpec:
    """The spec registered as ``name``; an unknown name is an :class:`InputError` with close names."""
    spec = _BY_NAME.get(name.strip().lower())
    if spec is not None:
        return spec
    close = difflib.get_close_matches(name, list(_BY_NAME), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError(
        "model",
        f"unknown text-to-image model {name!r}{hint}; registered: {', '.join(_BY_NAME)} "
        "(or pass --weights FOLDER, a diffusers pipeline folder)",
    )
