"""`geo-dfm classify` (placeholder until its issue lands: says it is not built yet)."""

from geo_dfm.cli.not_built import not_built_command

classify = not_built_command("classify", "The 'classify' subcommand")
