"""Subcommands that are planned but not built yet: they say so and exit 1, never pretend."""

from __future__ import annotations

import click


def not_built_command(name: str, what: str) -> click.Command:
    """A command named ``name`` that explains it is not built yet."""

    @click.command(
        name=name,
        help=f"{what} (not built yet).",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command() -> None:
        raise click.ClickException(f"'geo-dfm {name}' is not built yet: {what.lower()} is planned work.")

    return command
