"""Turn the CLI's shared option values into the jobs' value objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo_dfm.jobs.params import ChipParams, ModelParams
from tile_tools.errors import InputError
from tile_tools.units import parse_bands


def parse_list(text: str | None) -> tuple[str, ...]:
    """``"256, 512"`` → ``("256", "512")`` (empty parts dropped)."""
    if text is None:
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def model_params(options: Mapping[str, Any]) -> ModelParams:
    return ModelParams(
        name=options.get("model_name"),
        weights=options.get("weights"),
        model_config=options.get("model_config"),
        adapter=options.get("adapter"),
        device=options.get("device") or "auto",
        precision=options.get("precision") or "auto",
        batch_size=int(options.get("batch_size") or 32),
        threads=options.get("threads"),
    )


def chip_params(options: Mapping[str, Any]) -> ChipParams:
    min_valid = float(options.get("min_valid", 0.5))
    if not 0.0 <= min_valid <= 1.0:
        raise InputError("--min-valid", f"must lie between 0 and 1, got {min_valid}")
    gsd = options.get("gsd")
    if gsd is not None and gsd <= 0:
        raise InputError("--gsd", f"must be positive, got {gsd}")
    return ChipParams(
        chip_size=options.get("chip_size"),
        overlap=options.get("overlap") or "0.25",
        scales=parse_list(options.get("scales")),
        gsd=gsd,
        bands=parse_bands(options.get("bands")),
        aoi=options.get("aoi"),
        min_valid=min_valid,
        stretch=options.get("stretch") or "auto",
    )
