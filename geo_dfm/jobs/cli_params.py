"""Turn the CLI's shared option values into the jobs' value objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo_dfm.jobs.params import ChipParams, ModelParams


def model_params(options: Mapping[str, Any]) -> ModelParams:
    """``model_options`` values → :class:`ModelParams`."""
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
    """``chip_options`` values → :class:`ChipParams` (checked later, when the scene is opened)."""
    return ChipParams(
        chip_size=options.get("chip_size"),
        overlap=options.get("overlap") or "0.25",
        scales=options.get("scales"),
        gsd=options.get("gsd"),
        bands=options.get("bands"),
        aoi=options.get("aoi"),
        min_valid=float(options.get("min_valid", 0.5)),
        stretch=options.get("stretch") or "auto",
        edge=options.get("edge") or "shift",
        xyz_zoom=options.get("xyz_zoom"),
    )
