"""`geo-dfm demo -o DIR`: localize and classify a generated sample scene, print where the outputs are."""

from __future__ import annotations

import click

from geo_dfm.cli.options import output_options, progress_options


@click.command(name="demo")
@output_options
@click.option(
    "--model",
    "model_name",
    default="georsclip-vit-b-32",
    show_default=True,
    help="Model to try first; without its weights the demo falls back (loudly) to the toy model.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--size", type=click.IntRange(128, 4096), default=512, show_default=True, help="Scene size (px)."
)
@progress_options
def demo(
    output: str,
    overwrite: bool,
    model_name: str,
    device: str,
    size: int,
    progress_mode: str,
    print_json: bool,
) -> None:
    """Generate a synthetic sample scene and run localize ("water", "runway") and classify on it.

    Example: geo-dfm demo -o demo-output --overwrite
    """
    from geo_dfm.cli.runner import run_job
    from geo_dfm.jobs.demo import DemoParams, describe_outputs, run_demo

    params = DemoParams(output=output, overwrite=overwrite, model=model_name, device=device, size=size)

    def notify(message: str) -> None:
        click.echo(message, err=True)

    summary = run_job("demo", lambda progress: run_demo(params, progress, notify), progress_mode, print_json)
    if progress_mode != "jsonl" and not print_json:
        click.echo(describe_outputs(summary))
