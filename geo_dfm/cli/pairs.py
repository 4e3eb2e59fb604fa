"""`geo-dfm pairs SCENE… LABELS --label-field F -o OUT` and `geo-dfm pairs --filter PAIRS -o KEPT`."""

from __future__ import annotations

import click

from geo_dfm.cli.options import chip_options, model_options, output_options, progress_options


@click.command(name="pairs")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=str))
@output_options
@click.option("--label-field", default=None, help="The labels' attribute holding the class name.")
@click.option("--layer", default=None, help="The layer of the labels file (default: its first).")
@click.option(
    "--min-coverage", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
    help="Least share of a chip its majority label must cover.",
)  # fmt: skip
@click.option("--templates", default="rs105", show_default=True, help="Caption templates (set name or file).")
@click.option("--captions-per-chip", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--negatives", default=None, help="Label for chips outside every polygon (default: no negatives)."
)
@click.option(
    "--max-negatives", type=click.IntRange(min=0), default=None, help="Negatives per scene at most."
)
@click.option(
    "--max-per-class", type=click.IntRange(min=1), default=None, help="Chips per label and scene at most."
)
@click.option("--sampling", type=click.Choice(["grid", "random"]), default="grid", show_default=True)
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Random windows per scene.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of captions, negatives, windows.")
@click.option(
    "--filter", "filter_pairs", type=click.Path(path_type=str), default=None,
    help="Filter these pairs (RS5M step) instead of making pairs from labels.",
)  # fmt: skip
@click.option("--rs-threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True)
@click.option(
    "--min-similarity", type=click.FloatRange(-1.0, 1.0), default=None, help="Least image–caption cosine."
)
@click.option("--rs-prompts", default=None, help="Semicolon-separated prompts describing RS images.")
@click.option("--non-rs-prompts", default=None, help="Semicolon-separated prompts describing other images.")
@click.option(
    "--images-dir", type=click.Path(path_type=str), default=None, help="Root of relative image paths."
)
@click.option("--image-column", default=None, help="The table's image column.")
@click.option("--caption-column", default=None, help="The table's caption column.")
@click.option("--encoding", default=None, help="The table's text encoding (default UTF-8, else GB18030).")
@chip_options
@model_options
@progress_options
def pairs(inputs: tuple[str, ...], **options) -> None:
    """Training pairs from map labels (SCENE… LABELS --label-field F), or RS filtering (--filter PAIRS).

    From labels: chips over the labelled polygons (majority label per chip, --min-coverage), captioned
    from --templates; OUT gets pairs.csv, chips/, pairs.gpkg, class_counts.csv and summary.json.
    --filter keeps pairs whose image looks like remote sensing to --model (RS vs non-RS prompts,
    --rs-threshold; --min-similarity for the caption); KEPT gets pairs.csv (or shards/) and scores.csv.

    Example: geo-dfm pairs scene.tif landcover.gpkg --label-field class -o pairs/ --chip-size 100m
    """
    from geo_dfm.cli.runner import run_registered

    source = options.pop("filter_pairs")
    if source is not None:
        if inputs:
            raise click.UsageError("--filter takes no SCENE/LABELS arguments")
        rs_prompts, non_rs_prompts = (
            _prompts(options.pop("rs_prompts")),
            _prompts(options.pop("non_rs_prompts")),
        )
        run_registered(
            "pairs-filter", options, pairs=source, rs_prompts=rs_prompts, non_rs_prompts=non_rs_prompts
        )
        return
    if len(inputs) < 2:
        raise click.UsageError(
            "give one or more scenes and the labels file: SCENE… LABELS (or --filter PAIRS)"
        )
    if not options.get("label_field"):
        raise click.UsageError("name the labels' attribute holding the class name: --label-field F")
    run_registered("pairs", options, scenes=tuple(inputs[:-1]), labels=inputs[-1])


def _prompts(text: str | None) -> tuple[str, ...] | None:
    return tuple(p.strip() for p in text.split(";") if p.strip()) if text else None
