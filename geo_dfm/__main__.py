"""``python -m geo_dfm`` is the ``geo-dfm`` command."""

from geo_dfm.cli.main import entry_point

entry_point()
