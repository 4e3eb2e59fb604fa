"""Value objects shared by the jobs: which model to run, how to cut a scene into chips."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelParams:
    """Which encoder to load and how to run it (the CLI's ``model_options``)."""

    name: str | None = None
    weights: str | None = None
    model_config: str | None = None
    adapter: str | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 32
    threads: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChipParams:
    """How a scene is cut into chips: the CLI's ``chip_options`` as given (text).

    Lengths stay text (``"224"`` px, ``"100m"`` metres, ``"0.25"`` fraction) and are interpreted
    by :func:`tile_tools.grid.plan_chips` against the scene's working grid. ``chip_size=None``
    means the model's input size in pixels.
    """

    chip_size: str | None = None
    overlap: str = "0.25"
    scales: str | None = None
    gsd: float | None = None
    bands: str | None = None
    aoi: str | None = None
    min_valid: float = 0.5
    stretch: str = "auto"
    edge: str = "shift"
    xyz_zoom: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
