"""`geo-dfm classify SCENE -o OUT`: a zero-shot label for every chip of a scene."""

from __future__ import annotations

import click

from geo_dfm.cli.localize import dense_options
from geo_dfm.cli.options import (
    chip_options,
    label_options,
    model_options,
    output_options,
    progress_options,
    weighting_option,
)


@click.command(name="classify")
@click.argument("scene", type=click.Path(path_type=str))
@output_options
@label_options
@click.option(
    "--templates",
    default="rs105",
    show_default=True,
    help="Prompt templates: rs105, remoteclip, skyclip, none, or a file with one '{}' template a line.",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Leave chips (and pixels) whose top probability is below this unlabelled.",
)
@weighting_option("How overlapping chips' probabilities are blended into pixels.")
@click.option(
    "--method",
    type=click.Choice(["blend", "dense"]),
    default="blend",
    show_default=True,
    help="blend: one probability vector per chip; dense: per-patch probabilities from the last ViT "
    "block (open-vocabulary segmentation; ViT models only).",
)
@dense_options
@click.option(
    "--decimate",
    type=click.IntRange(min=1),
    default=None,
    help="Write one output pixel per N×N scene pixels (default: 8 output pixels per chip stride, 2 per "
    "patch for dense, more for huge scenes; 1 = full resolution).",
)
@click.option(
    "--min-region-area",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="dense only: leave class regions smaller than this out of the regions layer (square metres).",
)
@chip_options
@model_options
@progress_options
def classify(scene: str, **options) -> None:
    """Zero-shot land-cover label for every chip of SCENE (give --labels, --labels-file or --preset).

    Each chip's class probabilities (softmax of 100·cosine over the prompt-ensemble class
    embeddings) are blended into pixels; a pixel's class is its highest blended probability.
    With --method dense every patch gets its own probabilities (softmax of the model's logit
    scale × cosine), blended the same way.
    OUT receives classes.tif, probabilities.tif, labels.gpkg and summary.json.

    Example: geo-dfm classify scene.tif --preset landcover -o landcover/
    """
    from geo_dfm.cli.runner import run_registered
    from geo_dfm.jobs.labels import split_labels

    run_registered("classify", options, scene=scene, labels=split_labels(options["labels"]))
