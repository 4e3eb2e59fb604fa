"""Options shared by several subcommands, declared once.

Each decorator adds a group of options; the command receives them as keyword arguments.
Lengths such as ``--chip-size``/``--overlap`` are given as text and parsed by tile_tools
(``224`` pixels, ``100m`` metres, ``0.25``/``25%`` a fraction of the chip, ``32px`` pixels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from geo_dfm.progress import PROGRESS_MODES

F = TypeVar("F", bound=Callable[..., Any])


def _apply(options: list[Callable[[F], F]], func: F) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def output_options(func: F) -> F:
    """``-o/--output`` (required) and ``--overwrite``."""
    return _apply(
        [
            click.option(
                "-o",
                "--output",
                "output",
                required=True,
                type=click.Path(path_type=str),
                help="Output folder (or file where the command says so).",
            ),
            click.option("--overwrite", is_flag=True, help="Replace an existing output."),
        ],
        func,
    )


def progress_options(func: F) -> F:
    """``--progress`` (auto|bar|jsonl|none) and ``--json``."""
    return _apply(
        [
            click.option(
                "--progress",
                "progress_mode",
                type=click.Choice(PROGRESS_MODES),
                default="auto",
                show_default=True,
                help="Progress display; jsonl prints machine-readable events on stdout.",
            ),
            click.option(
                "--json", "print_json", is_flag=True, help="Print the job summary as JSON on stdout."
            ),
        ],
        func,
    )


def chip_options(func: F) -> F:
    """How a scene is cut into chips.

    The command receives the fields of :class:`geo_dfm.jobs.params.ChipParams` (``chip_size, overlap,
    scales, gsd, bands, aoi, min_valid, edge, xyz_zoom, stretch, max_chips, max_chip_size,
    max_grid_pixels``).
    """
    return _apply(
        [
            click.option(
                "--chip-size",
                "--size",
                "chip_size",
                default=None,
                help="Chip size: pixels (224) or metres (100m). Default: the model's input size "
                "(256 px tiles with --xyz).",
            ),
            click.option(
                "--overlap",
                default="0.25",
                show_default=True,
                help="Overlap between chips: fraction (0.25), percent (25%), pixels (32px) or metres (10m).",
            ),
            click.option(
                "--scales",
                default=None,
                help="Several chip sizes at once, comma-separated (e.g. 256,512,768 or 50m,100m).",
            ),
            click.option(
                "--gsd", type=float, default=None, help="Resample to this ground resolution (metres/pixel)."
            ),
            click.option(
                "--bands",
                default=None,
                help="Bands to use as RGB, 1-based (e.g. 4,3,2); one band is repeated to grey.",
            ),
            click.option(
                "--aoi",
                type=click.Path(path_type=str),
                default=None,
                help="Area of interest: a vector file (any CRS) or minx,miny,maxx,maxy in the scene CRS "
                "(minx,miny,maxx,maxy@EPSG:4326 for another CRS).",
            ),
            click.option(
                "--min-valid",
                type=float,
                default=0.5,
                show_default=True,
                help="Skip chips with less than this fraction of valid pixels.",
            ),
            click.option(
                "--edge",
                type=click.Choice(["shift", "pad"]),
                default="shift",
                show_default=True,
                help="Last chip of a row/column: shifted flush to the border, or padded with nodata.",
            ),
            click.option(
                "--xyz",
                "xyz_zoom",
                type=int,
                default=None,
                help="Chip along the XYZ web-map tiles of this zoom (EPSG:3857, 0-24) instead of a grid.",
            ),
            click.option(
                "--max-chips",
                type=click.IntRange(min=1),
                default=2_000_000,
                show_default=True,
                help="Safety limit: refuse a plan with more chips (raise it for huge scenes).",
            ),
            click.option(
                "--max-chip-size",
                type=click.IntRange(min=1),
                default=8192,
                show_default=True,
                help="Safety limit: refuse chips larger than this many pixels a side.",
            ),
            click.option(
                "--max-grid-pixels",
                type=click.IntRange(min=1),
                default=100_000_000_000,
                show_default=True,
                help="Safety limit: refuse a working grid (after --gsd) with more pixels.",
            ),
            click.option(
                "--stretch",
                type=click.Choice(["auto", "none", "percentile"]),
                default="auto",
                show_default=True,
                help="Conversion to 8 bit: per-scene percentile stretch (auto: only for non-8-bit data).",
            ),
        ],
        func,
    )


def model_options(func: F) -> F:
    """Which model to load and where to run it."""
    return _apply(
        [
            click.option(
                "--model",
                "model_name",
                default=None,
                help="Registered model name (see 'geo-dfm models list') or an open_clip architecture.",
            ),
            click.option(
                "--weights",
                type=click.Path(path_type=str),
                default=None,
                help="Checkpoint file (.pt/.pth/.safetensors) for --model or --model-config.",
            ),
            click.option(
                "--model-config",
                type=click.Path(path_type=str),
                default=None,
                help="A custom open_clip model config (JSON).",
            ),
            click.option(
                "--adapter",
                type=click.Path(path_type=str),
                default=None,
                help="A peft adapter folder applied on top of the model.",
            ),
            click.option(
                "--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."
            ),
            click.option(
                "--precision",
                type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
                default="auto",
                show_default=True,
                help="fp32 on CPU; autocast bf16/fp16 on GPU.",
            ),
            click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
            click.option(
                "--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch."
            ),
        ],
        func,
    )


def label_options(func: F) -> F:
    """``--labels``, ``--labels-file`` and ``--preset``: the class names of a zero-shot classification."""
    return _apply(
        [
            click.option(
                "--labels", default=None, help='Comma-separated class names, e.g. "water,forest,town".'
            ),
            click.option(
                "--labels-file",
                type=click.Path(path_type=str),
                default=None,
                help="A text file with one class name per line.",
            ),
            click.option(
                "--preset", default=None, help="A label preset: landcover, aid, resisc45 or eurosat."
            ),
        ],
        func,
    )


def weighting_option(help_text: str) -> Callable[[F], F]:
    """``--weighting``: how a chip's values spread over its pixels (the stitcher's weightings)."""
    from geo_dfm.jobs.stitch import WEIGHTINGS

    return click.option(
        "--weighting",
        type=click.Choice(list(WEIGHTINGS)),
        default=WEIGHTINGS[0],
        show_default=True,
        help=help_text,
    )
