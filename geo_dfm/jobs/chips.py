"""``chips``: cut a scene into small georeferenced GeoTIFFs and an index GeoPackage (no model)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from geo_dfm.jobs.params import ChipParams, param
from geo_dfm.jobs.pipeline import check_scene, start_job
from geo_dfm.jobs.summary import grid_summary
from geo_dfm.progress import Progress
from tile_tools.errors import InputError


@dataclass(frozen=True)
class ChipsParams:
    """Everything ``chips`` needs (``chips.chip_size`` defaults to 224 px)."""

    scene: str = param(help="The scene: any GDAL raster or a slippy-map folder.")
    output: str = param(help="Output folder: chips/*.tif, index.gpkg, summary.json.")
    overwrite: bool = param(False, help="Replace an existing output folder written by geo-dfm.")
    raw: bool = param(False, help="Write every source band in its own data type instead of 8-bit RGB.")
    workers: int = param(2, help="Reader threads.")
    chips: ChipParams = field(default_factory=ChipParams)

    def inputs(self) -> tuple[str, ...]:
        return (self.scene, *self.chips.input_files())


def run_chips(params: ChipsParams, progress: Progress) -> dict[str, Any]:
    """Run ``chips`` and return its summary (also written to ``OUT/summary.json``)."""
    from tile_tools.chip_writer import export_chips, write_chip_index
    from tile_tools.prefetch import iter_chips

    if params.workers < 0:
        raise InputError("workers", f"must be at least 0, got {params.workers}")
    params = replace(params, scene=check_scene(params.scene))
    with (
        start_job("chips", params.output, params.overwrite, progress, params.inputs()) as job,
        job.plan(params.scene, params.chips, None, read_raw=params.raw) as plan,
    ):
        reader, windows = plan.reader, plan.windows
        with job.stage("write chips", total=len(windows)):
            # closing(): a cancelled job stops the reader threads before the dataset is closed
            with contextlib.closing(iter_chips(reader, windows, workers=params.workers)) as chips_read:
                records = export_chips(
                    chips_read,
                    job.folder,
                    raw=params.raw,
                    min_valid=params.chips.min_valid,
                    on_chip=lambda _chip: progress.advance(),
                )
            write_chip_index(records, reader.grid.crs, job.path("index.gpkg"))
        return job.finish(
            model=None,
            parameters={**params.chips.as_dict(), "raw": params.raw, "workers": params.workers},
            crs=reader.grid.crs,
            outputs={"chips": job.final("chips"), "index": job.final("index.gpkg")},
            scene=params.scene,
            grid=grid_summary(reader.grid),
            stretch={"low": reader.stretch.low, "high": reader.stretch.high},
            bands=list(reader.bands),
            chips=len(records),
            chips_planned=len(windows),
        )
