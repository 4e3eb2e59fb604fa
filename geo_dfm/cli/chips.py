"""`geo-dfm chips`: cut a scene into small georeferenced GeoTIFFs and an index GeoPackage."""

from __future__ import annotations

import contextlib
import json
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
    from pathlib import Path

    from geo_dfm import __version__
    from tile_tools.atomic import atomic_directory
    from tile_tools.chip_writer import export_chips, write_chip_index
    from tile_tools.grid import plan_chips
    from tile_tools.prefetch import iter_chips

    timings: dict[str, float] = {}
    started = time.perf_counter()
    target = Path(output).resolve()
    if target.exists() and not overwrite:  # fail before reading anything
        from tile_tools.errors import InputError

        raise InputError(target, "output folder exists (use --overwrite to replace it)")
    progress.stage("plan chips")
    with plan_chips(scene, read_raw=raw, **chip_kwargs) as plan:
        reader, windows = plan.reader, plan.windows
        timings["plan"] = round(time.perf_counter() - started, 3)
        with atomic_directory(target, overwrite=overwrite) as tmp:
            progress.stage("write chips", total=len(windows))
            t0 = time.perf_counter()
            # closing(): a cancelled job stops the reader threads before the dataset is closed
            with contextlib.closing(iter_chips(reader, windows, workers=workers)) as chips_read:
                records = export_chips(
                    chips_read,
                    tmp,
                    raw=raw,
                    min_valid=chip_kwargs.get("min_valid", 0.0),
                    on_chip=lambda _chip: progress.advance(),
                )
            timings["write chips"] = round(time.perf_counter() - t0, 3)
            write_chip_index(records, reader.grid.crs, tmp / "index.gpkg")
            crs = reader.grid.crs
            summary = {
                "command": "chips",
                "version": __version__,
                "model": None,
                "scene": str(Path(scene).resolve()),
                "parameters": {**chip_kwargs, "raw": raw, "workers": workers},
                "grid": {
                    "width": reader.grid.width,
                    "height": reader.grid.height,
                    "transform": list(reader.grid.transform)[:6],
                },
                "crs": None if crs is None else (crs.to_string() if crs.to_epsg() else crs.to_wkt()),
                "stretch": {"low": reader.stretch.low, "high": reader.stretch.high},
                "bands": list(reader.bands),
                "chips": len(records),
                "chips_planned": len(windows),
                "timings": {**timings, "total": round(time.perf_counter() - started, 3)},
                "outputs": {
                    "chips": str(target / "chips"),
                    "index": str(target / "index.gpkg"),
                    "summary": str(target / "summary.json"),
                },
            }
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
