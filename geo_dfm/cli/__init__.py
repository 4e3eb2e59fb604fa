"""The ``geo-dfm`` command line: one module per subcommand, wired up in :mod:`geo_dfm.cli.main`."""
