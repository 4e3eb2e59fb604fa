"""`geo-dfm demo` (placeholder until its issue lands: says it is not built yet)."""

from geo_dfm.cli.not_built import not_built_command

demo = not_built_command("demo", "The 'demo' subcommand")
