"""`geo-dfm generate PROMPT... -o OUT`: remote-sensing images from text (GeoRSSD), optionally filtered.

Importing this module imports neither torch nor diffusers: ``geo-dfm --help`` and ``generate --help``
work without the optional ``generate`` extra; a run without it says how to install it (exit 2).
"""

from __future__ import annotations

import click

from geo_dfm.cli.options import output_options, progress_options


@click.command(name="generate")
@click.argument("prompts", nargs=-1, metavar="PROMPT...")
@output_options
@click.option("-n", "--count", type=int, default=4, show_default=True, help="Images per prompt.")
@click.option(
    "--model",
    "model",
    default=None,
    help="Text-to-image model: georssd-20p (default), georssd-20p-16000 or georssd-1p.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=str),
    default=None,
    help="A local diffusers Stable Diffusion pipeline folder (with model_index.json) instead of the cache.",
)
@click.option("--steps", type=int, default=30, show_default=True, help="Denoising steps.")
@click.option(
    "--guidance", type=float, default=7.5, show_default=True, help="Classifier-free guidance scale."
)
@click.option(
    "--size", type=int, default=512, show_default=True, help="Image width and height (px, multiple of 8)."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the first image; image k has seed+k."
)
@click.option("--negative", default=None, help="Negative prompt (what the images should not show).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Images per pipeline call.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="Weights dtype: fp32 on CPU; bf16/fp16 on GPU (auto: bf16 where supported).",
)
@click.option("--threads", type=int, default=None, help="CPU threads for torch.")
@click.option(
    "--attention-slicing",
    is_flag=True,
    help="Compute attention and VAE decoding in slices: less GPU memory, a little slower.",
)
@click.option(
    "--filter",
    "filter_model",
    default=None,
    help="Keep only images an RS CLIP (registry name, e.g. georsclip-vit-b-32) matches to their own prompt.",
)
@click.option(
    "--filter-against",
    multiple=True,
    help="A competing text for --filter (repeatable), e.g. the classes a rare class is confused with.",
)
@click.option(
    "--filter-margin",
    type=float,
    default=0.01,
    show_default=True,
    help="Keep an image when cos(own prompt) - max cos(other texts) >= this.",
)
@progress_options
def generate(prompts: tuple[str, ...], **options) -> None:
    """Generate remote-sensing images for each PROMPT with GeoRSSD (Stable Diffusion 2.1 on RS5M).

    OUT receives images/*.png, pairs.csv (image_path, caption, seed, model: ready for
    'geo-dfm finetune --pairs') and summary.json; with --filter also filter.csv and removed/.
    Needs the optional extra: pip install 'geo-dfm[generate]'.

    \b
    Example:
      geo-dfm generate "a satellite image of a solar farm" -n 16 -o solar/ \\
        --filter georsclip-vit-b-32 --filter-against "a satellite image of farmland"
    """
    from geo_dfm.cli.runner import run_registered

    run_registered("generate", options, prompts=tuple(prompts))
