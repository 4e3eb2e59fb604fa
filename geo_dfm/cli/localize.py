"""`geo-dfm localize` (placeholder until its issue lands: says it is not built yet)."""

from geo_dfm.cli.not_built import not_built_command

localize = not_built_command("localize", "The 'localize' subcommand")
