"""`geo-dfm chips`: cut a scene into small georeferenced GeoTIFFs and an index GeoPackage."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import click

from geo_dfm.cli.options import chip_options, output_options, progress_options


@click.command(name="chips")
@click.argument("scene", type=click.Path(path_type=str))
@output_options
@chip_options
@click.option(
    "--raw", is_flag=True, help="Write every source band in its own data type instead of 8-bit RGB."
)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Reader threads.")
@progress_options
def chips(
    scene: str,
    output: str,
    overwrite: bool,
    raw: bool,
    workers: int,
    progress_mode: str,
    print_json: bool,
    **chip_kwargs: Any,
) -> None:
    """Cut SCENE into chips: OUTPUT/chips/*.tif, OUTPUT/index.gpkg (layer chips), OUTPUT/summary.json.

    Example: geo-dfm chips scene.tif -o chips/ --size 224 --overlap 0.25
    """
    from geo_dfm.cli.runner import run_job

    def job(progress: Any) -> dict[str, Any]:
        return _run(scene, output, overwrite, raw, workers, progress, chip_kwargs)

    run_job("chips", job, progress_mode, print_json)


def _run(
    scene: str,
    output: str,
    overwrite: bool,
    raw: bool,
    workers: int,
    progress: Any,
    chip_kwargs: dict[str, Any],
) -> dict[str, Any]:
    from geo_dfm.jobs.common import check_output_free, check_scene
    from geo_dfm.jobs.summary import StageTimer, grid_summary, make_summary, write_summary
    from tile_tools.atomic import atomic_directory
    from tile_tools.chip_writer import export_chips, write_chip_index
    from tile_tools.grid import plan_chips
    from tile_tools.prefetch import iter_chips

    started = time.perf_counter()
    timer = StageTimer()
    target = check_output_free(output, overwrite)  # fail before reading anything
    scene_path = check_scene(scene)
    progress.stage("plan chips")
    with timer.stage("plan"):
        plan = plan_chips(scene, read_raw=raw, **chip_kwargs)
    with plan, atomic_directory(target, overwrite=overwrite) as tmp:
        reader, windows = plan.reader, plan.windows
        progress.stage("write chips", total=len(windows))
        with timer.stage("write chips"):
            # closing(): a cancelled job stops the reader threads before the dataset is closed
            with contextlib.closing(iter_chips(reader, windows, workers=workers)) as chips_read:
                records = export_chips(
                    chips_read,
                    tmp,
                    raw=raw,
                    min_valid=chip_kwargs.get("min_valid", 0.0),
                    on_chip=lambda _chip: progress.advance(),
                )
            write_chip_index(records, reader.grid.crs, tmp / "index.gpkg")
        summary = make_summary(
            "chips",
            None,
            {**chip_kwargs, "raw": raw, "workers": workers},
            timer,
            reader.grid.crs,
            {
                "chips": str(target / "chips"),
                "index": str(target / "index.gpkg"),
                "summary": str(target / "summary.json"),
            },
            scene=str(scene_path),
            grid=grid_summary(reader.grid),
            stretch={"low": reader.stretch.low, "high": reader.stretch.high},
            bands=list(reader.bands),
            chips=len(records),
            chips_planned=len(windows),
        )
        summary["timings"]["total"] = round(time.perf_counter() - started, 4)
        write_summary(summary, tmp / "summary.json")
    return summary
