"""`geo-dfm classify SCENE -o OUT`: a zero-shot label for every chip of a scene."""

from __future__ import annotations

import click

from geo_dfm.cli.options import chip_options, model_options, output_options, progress_options


@click.command(name="classify")
@click.argument("scene", type=click.Path(path_type=str))
@output_options
@click.option("--labels", default=None, help='Comma-separated class names, e.g. "water,forest,town".')
@click.option(
    "--labels-file",
    type=click.Path(path_type=str),
    default=None,
    help="A text file with one class name per line.",
)
@click.option("--preset", default=None, help="A label preset: landcover, aid, resisc45 or eurosat.")
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
@click.option(
    "--weighting",
    type=click.Choice(["hann", "gaussian", "uniform"]),
    default="hann",
    show_default=True,
    help="How overlapping chips' probabilities are blended into pixels.",
)
@chip_options
@model_options
@progress_options
def classify(scene: str, **options) -> None:
    """Zero-shot land-cover label for every chip of SCENE (give --labels, --labels-file or --preset).

    Each chip's class probabilities (softmax of 100·cosine over the prompt-ensemble class
    embeddings) are blended into pixels; a pixel's class is its highest blended probability.
    OUT receives classes.tif, probabilities.tif, labels.gpkg and summary.json.

    Example: geo-dfm classify scene.tif --preset landcover -o landcover/
    """
    from geo_dfm.cli.runner import run_job
    from geo_dfm.jobs.classify import ClassifyParams, run_classify
    from geo_dfm.jobs.cli_params import chip_params, model_params
    from geo_dfm.jobs.labels import resolve_labels

    def job(progress):
        params = ClassifyParams(
            scene=scene,
            output=options["output"],
            overwrite=options["overwrite"],
            labels=resolve_labels(options["labels"], options["labels_file"], options["preset"]),
            templates=options["templates"],
            min_confidence=options["min_confidence"],
            weighting=options["weighting"],
            chips=chip_params(options),
            model=model_params(options),
        )
        return run_classify(params, progress)

    run_job("classify", job, options["progress_mode"], options["print_json"])
