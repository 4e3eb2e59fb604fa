"""`geo-dfm chips`: cut a scene into small georeferenced GeoTIFFs and an index GeoPackage."""

from __future__ import annotations

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
def chips(scene: str, **options: Any) -> None:
    """Cut SCENE into chips: OUTPUT/chips/*.tif, OUTPUT/index.gpkg (layer chips), OUTPUT/summary.json.

    Example: geo-dfm chips scene.tif -o chips/ --size 224 --overlap 0.25
    """
    from geo_dfm.cli.runner import run_registered

    run_registered("chips", options, scene=scene)
