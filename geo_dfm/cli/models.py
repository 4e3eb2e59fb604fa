"""`geo-dfm models` (placeholder until its issue lands: says it is not built yet)."""

from geo_dfm.cli.not_built import not_built_command

models = not_built_command("models", "The 'models' subcommand")
