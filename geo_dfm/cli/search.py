"""`geo-dfm search` (placeholder until its issue lands: says it is not built yet)."""

from geo_dfm.cli.not_built import not_built_command

search = not_built_command("search", "The 'search' subcommand")
