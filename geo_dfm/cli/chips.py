"""`geo-dfm chips` (placeholder until its issue lands: says it is not built yet)."""

from geo_dfm.cli.not_built import not_built_command

chips = not_built_command("chips", "The 'chips' subcommand")
