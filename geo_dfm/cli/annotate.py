"""`geo-dfm annotate SCENES... -o OUT`: classify and/or localize many scenes, resumable, locally or on Dask."""

from __future__ import annotations

import click

from geo_dfm.cli.options import chip_options, label_options, model_options, progress_options, weighting_option

#: The exit status of a run in which some scenes failed (0: none did).
EXIT_SCENES_FAILED = 3


@click.command(name="annotate")
@click.argument("scenes", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(path_type=str),
    help="Output folder of the run.",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in OUT: skip its finished scenes, redo the rest."
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in OUT (only what geo-dfm wrote).")
@click.option(
    "--queries", "--query", "queries", multiple=True, help="A text query to localize (repeat for several)."
)
@label_options
@click.option("--templates", default="rs105", show_default=True, help="Prompt templates (classify).")
@click.option(
    "--min-confidence",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="classify: leave chips and pixels whose top probability is below this unlabelled.",
)
@click.option(
    "--method",
    type=click.Choice(["blend", "selo", "dense"]),
    default="blend",
    show_default=True,
    help="localize: weighted chip splats (blend), the reference SeLo map (selo) or patch-level maps (dense).",
)
@click.option("--exact", is_flag=True, help="localize, selo only: the reference's JPEG (q95) round trips.")
@weighting_option("How a chip's scores or probabilities spread over its pixels.")
@click.option(
    "--decimate", type=click.IntRange(min=1), default=None, help="One output pixel per N×N scene pixels."
)
@click.option(
    "--region-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="localize: normalised score above which pixels form hot regions.",
)
@click.option(
    "--min-region-area",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="localize: drop hot regions smaller than this (square metres).",
)
@click.option(
    "--asset", default=None, help="STAC asset key to annotate (default: visual, or each item's raster)."
)
@click.option(
    "--crs", default=None, help="CRS of the run's GeoPackage and mosaics (default: the first scene's)."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Local worker processes, each loading the model once (1: run in this process).",
)
@click.option(
    "--scheduler",
    default=None,
    help="Run on an existing Dask cluster: scheduler address (tcp://HOST:8786) or scheduler JSON file.",
)
@chip_options
@model_options
@progress_options
def annotate(scenes: tuple[str, ...], **options) -> None:
    """Classify (--labels/--labels-file/--preset) and/or localize (--queries) every scene of SCENES.

    SCENES are raster paths, globs, text files with one path or URL per line (/vsicurl/, /vsis3/ pass
    through) or STAC ItemCollection JSON files (--asset). OUT receives scenes/<id>/{classify,localize}/
    (the single-scene outputs), annotations.gpkg (layers chips, regions, hotspots, scenes), mosaics/*.vrt
    (one layer per output kind), journal.jsonl and summary.json. A killed run continues with --resume.

    Exit status: 0 every scene done, 3 some scenes failed (listed in the summary and the scenes layer),
    2 bad input, 130 cancelled.

    Example: geo-dfm annotate tiles/*.tif --preset landcover --queries "airport runway" -o county/ --workers 4
    """
    from geo_dfm.cli.runner import run_registered
    from geo_dfm.jobs.labels import split_labels

    summary = run_registered(
        "annotate", options, scenes=tuple(scenes), labels=split_labels(options["labels"]) or (),
        queries=tuple(options["queries"]),
    )  # fmt: skip
    if summary["scenes"]["failed"]:
        raise ScenesFailed(summary["scenes"]["failed"], summary["scenes"]["total"])


class ScenesFailed(click.ClickException):
    """The run finished but some scenes failed: exit status 3 (the summary lists them)."""

    exit_code = EXIT_SCENES_FAILED

    def __init__(self, failed: int, total: int) -> None:
        super().__init__(
            f"{failed} of {total} scenes failed; their errors are in the summary and the scenes layer"
        )
