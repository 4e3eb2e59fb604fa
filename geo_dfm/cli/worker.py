"""`geo-dfm worker` (placeholder until its issue lands: says it is not built yet)."""

from geo_dfm.cli.not_built import not_built_command

worker = not_built_command("worker", "The 'worker' subcommand")
