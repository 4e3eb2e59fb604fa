"""`geo-dfm localize SCENE QUERY [QUERY ...] -o OUT`: one heatmap per text query."""

from __future__ import annotations

import click

from geo_dfm.cli.options import (
    chip_options,
    model_options,
    output_options,
    progress_options,
    weighting_option,
)


@click.command(name="localize")
@click.argument("scene", type=click.Path(path_type=str))
@click.argument("queries", nargs=-1, required=True)
@output_options
@click.option(
    "--method",
    type=click.Choice(["blend", "selo"]),
    default="blend",
    show_default=True,
    help="blend: georeferenced chips with weighted splats; selo: the reference SeLo map, exactly.",
)
@click.option(
    "--exact",
    is_flag=True,
    help="selo only: add the reference's JPEG (q95) round trips of every crop and of the map.",
)
@weighting_option("blend only: how a chip's score is spread over its pixels.")
@click.option(
    "--decimate",
    type=click.IntRange(min=1),
    default=None,
    help="blend only: write one output pixel per N×N scene pixels (default: automatic for huge scenes).",
)
@click.option(
    "--region-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Normalised score above which pixels form the hot regions.",
)
@click.option(
    "--min-region-area",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Drop hot regions smaller than this (square metres).",
)
@chip_options
@model_options
@progress_options
def localize(scene: str, queries: tuple[str, ...], **options) -> None:
    """Text-query heatmaps (semantic localization) over SCENE, one per QUERY.

    Every chip is encoded once and shared by all queries. OUT receives a COG per query
    (band 1 normalised score, band 2 mean cosine similarity), a colour overlay PNG, a GeoPackage
    of hot regions and summary.json.

    Example: geo-dfm localize scene.tif "airport runway" "harbour" -o maps/
    """
    from geo_dfm.cli.runner import run_registered

    run_registered("localize", options, scene=scene, queries=tuple(queries))
