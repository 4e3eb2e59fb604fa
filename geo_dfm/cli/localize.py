"""`geo-dfm localize SCENE QUERY [QUERY ...] -o OUT`: one heatmap per text query."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from geo_dfm.cli.options import (
    chip_options,
    model_options,
    output_options,
    progress_options,
    weighting_option,
)

F = TypeVar("F", bound=Callable[..., Any])


def dense_options(func: F) -> F:
    """``--variant``, ``--input-size``, ``--cls-lambda``: how ``--method dense`` makes patch features."""
    from geo_dfm.models.patch_head import DEFAULT_VARIANT, DENSE_VARIANTS

    options = [
        click.option(
            "--variant",
            type=click.Choice(list(DENSE_VARIANTS)),
            default=DEFAULT_VARIANT,
            show_default=True,
            help="dense only: how the last ViT block makes patch features (docs/dense.md).",
        ),
        click.option(
            "--input-size",
            type=click.IntRange(min=1),
            default=None,
            help="dense only: pixels a side each window is resized to for the model (default: the "
            "model's input size; e.g. 448 for a B/16 interpolates its positional embedding).",
        ),
        click.option(
            "--cls-lambda",
            type=click.FloatRange(min=0.0),
            default=0.0,
            show_default=True,
            help="dense only: subtract this share of the window's image-level score (SegEarth-OV: 0.3).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command(name="localize")
@click.argument("scene", type=click.Path(path_type=str))
@click.argument("queries", nargs=-1, required=True)
@output_options
@click.option(
    "--method",
    type=click.Choice(["blend", "selo", "dense"]),
    default="blend",
    show_default=True,
    help="blend: georeferenced chips with weighted splats; selo: the reference SeLo map, exactly; "
    "dense: patch-level maps from the last ViT block (sharper; ViT models only).",
)
@click.option(
    "--score",
    type=click.Choice(["auto", "minmax", "contrast"]),
    default="auto",
    show_default=True,
    help="Band 1: minmax (scene-wide stretch of the similarity) or contrast (the query's probability "
    "against a background vocabulary: low where the query is absent); auto: contrast for dense.",
)
@click.option(
    "--background",
    default=None,
    help='contrast only: comma-separated background classes, e.g. "water,forest,road" '
    "(default: a list of generic remote-sensing classes, see docs/dense.md).",
)
@dense_options
@click.option(
    "--exact",
    is_flag=True,
    help="selo only: add the reference's JPEG (q95) round trips of every crop and of the map.",
)
@weighting_option("blend/dense: how a window's scores are spread over its pixels.")
@click.option(
    "--decimate",
    type=click.IntRange(min=1),
    default=None,
    help="blend/dense: write one output pixel per N×N scene pixels (default: 8 output pixels per chip "
    "stride for blend, 2 per patch for dense, more for huge scenes; 1 = full resolution).",
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
    (band 1 score in [0, 1], band 2 mean cosine similarity), a colour overlay PNG, a GeoPackage
    of hot regions and summary.json.

    Example: geo-dfm localize scene.tif "airport runway" "harbour" -o maps/ --method dense
    """
    from geo_dfm.cli.runner import run_registered
    from geo_dfm.jobs.labels import split_labels

    run_registered(
        "localize",
        options,
        scene=scene,
        queries=tuple(queries),
        background=split_labels(options["background"]),
    )
