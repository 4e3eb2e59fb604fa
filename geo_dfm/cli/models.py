"""`geo-dfm models`: list, describe and download the registered RS CLIP models."""

from __future__ import annotations

import dataclasses
import json

import click


@click.group(name="models", context_settings={"help_option_names": ["-h", "--help"]})
def models() -> None:
    """List, describe and download the registered RS CLIP models.

    Weights go to the standard Hugging Face cache (HF_HOME / HF_HUB_CACHE); zip releases
    (SkyCLIP) to $GEO_DFM_CACHE (default ~/.cache/geo-dfm).
    """


@models.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_command(as_json: bool) -> None:
    """Every registered model, its architecture, input size, prompt set and whether it is downloaded."""
    from geo_dfm.models.checkpoints import cached_weights
    from geo_dfm.models.registry import DEFAULT_MODEL, list_model_specs

    rows = []
    for spec in list_model_specs():
        local = "built on demand" if spec.local else ("yes" if cached_weights(spec) else "no")
        rows.append((spec, local))
    if as_json:
        payload = [
            {**_spec_dict(spec), "downloaded": local, "default": spec.name == DEFAULT_MODEL}
            for spec, local in rows
        ]
        click.echo(json.dumps(payload, indent=2))
        return
    header = ("NAME", "ARCHITECTURE", "INPUT", "PROMPTS", "DOWNLOADED", "DESCRIPTION")
    table = [header] + [
        (
            spec.name + (" *" if spec.name == DEFAULT_MODEL else ""),
            spec.architecture,
            str(spec.input_size),
            spec.templates,
            local,
            spec.description,
        )
        for spec, local in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
        )
    click.echo(
        "\n* default model. 'geo-dfm models info NAME' for details, 'geo-dfm models download NAME' to fetch."
    )


@models.command(name="info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the details as JSON.")
def info_command(name: str, as_json: bool) -> None:
    """Everything known about model NAME: source, architecture, preprocessing, prompts, licence."""
    from geo_dfm.models.checkpoints import cached_weights, download_url, hf_cache_dir
    from geo_dfm.models.registry import get_model_spec

    spec = get_model_spec(name)
    local = cached_weights(spec)
    details = {
        **_spec_dict(spec),
        "quick_gelu": spec.quick_gelu,
        "download_url": download_url(spec) or None,
        "local_file": str(local) if local else None,
        "hf_cache": str(hf_cache_dir()) if spec.hf_repo else None,
    }
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    width = max(len(key) for key in details)
    for key, value in details.items():
        if value not in (None, ""):
            shown = ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value
            click.echo(f"{key.ljust(width)}  {shown}")
    if local is None and not spec.local:
        click.echo(f"\nNot downloaded yet: run 'geo-dfm models download {spec.name}'.")


@models.command(name="download")
@click.argument("names", nargs=-1, required=True)
def download_command(names: tuple[str, ...]) -> None:
    """Download the weights of the models NAMES into the cache (progress bar on stderr).

    Prints one line per model with the local file.
    """
    from geo_dfm.models.checkpoints import download_weights
    from geo_dfm.models.registry import get_model_spec

    specs = [get_model_spec(name) for name in names]  # check every name before downloading anything
    for spec in specs:
        path = download_weights(spec)
        click.echo(f"{spec.name}\t{path}")


def _spec_dict(spec) -> dict[str, object]:
    data = dataclasses.asdict(spec)
    data["source"] = spec.source
    return {key: value for key, value in data.items() if value is not None}
