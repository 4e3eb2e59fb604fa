"""`geo-dfm search SCENE [SCENE ...] QUERY --top-k K -o OUT.gpkg`: text-to-image retrieval."""

from __future__ import annotations

import click

from geo_dfm.cli.options import chip_options, model_options, output_options, progress_options


@click.command(name="search")
@click.argument("scenes_and_query", nargs=-1, required=True, metavar="SCENE [SCENE ...] QUERY")
@output_options
@click.option("--top-k", type=click.IntRange(min=1), default=20, show_default=True, help="Chips to return.")
@click.option(
    "--index",
    "index_path",
    type=click.Path(path_type=str),
    default=None,
    help="Embedding index folder to reuse and extend. Default: geo-dfm-embeddings/ beside OUT.",
)
@chip_options
@model_options
@progress_options
def search(scenes_and_query: tuple[str, ...], **options) -> None:
    """Find the chips of the SCENEs that best match the text QUERY; write them to OUT (GeoPackage).

    Chip embeddings are stored in an index beside OUT and reused by later searches over the
    same scenes with the same model and chip settings (no image is encoded twice).

    Example: geo-dfm search a.tif b.tif "a harbour with boats" --top-k 20 -o harbour.gpkg
    """
    from geo_dfm.cli.runner import run_registered

    run_registered("search", options, scenes=tuple(scenes_and_query[:-1]), query=scenes_and_query[-1])
