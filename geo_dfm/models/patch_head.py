"""How dense (patch-level) features are made, without importing torch: the last-block variants of
:mod:`geo_dfm.models.dense` and :class:`PatchHead`, the value object naming one of them (job parameters
and schemas read these)."""

from __future__ import annotations

from dataclasses import dataclass

from geo_dfm.errors import InputError

DENSE_VARIANTS: tuple[str, ...] = ("plain", "maskclip", "sclip", "clearclip", "naclip", "segearth")
DEFAULT_VARIANT = "naclip"
"""Chosen by measurement on the synthetic world with the toy model (``docs/dense.md``)."""
NACLIP_SIGMA = 5.0
"""Standard deviation (patches) of NACLIP's Gaussian neighbourhood prior."""


@dataclass(frozen=True)
class PatchHead:
    """How patch features are made: the last-block ``variant`` and the side (pixels) of the square
    model input each window is resized to (``None``: the model's own input size; larger sizes
    interpolate the positional embedding, e.g. 448 for a B/16)."""

    variant: str = DEFAULT_VARIANT
    input_size: int | None = None
    naclip_sigma: float = NACLIP_SIGMA

    def __post_init__(self) -> None:
        if self.variant not in DENSE_VARIANTS:
            raise InputError(
                "variant", f"unknown dense variant {self.variant!r}; choose from {', '.join(DENSE_VARIANTS)}"
            )
        if self.input_size is not None and self.input_size < 1:
            raise InputError("input_size", f"must be a positive number of pixels, got {self.input_size}")
        if not self.naclip_sigma > 0:
            raise InputError("naclip_sigma", f"must be positive, got {self.naclip_sigma}")
