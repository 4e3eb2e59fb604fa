"""The main jobs behind the CLI: ``localize``, ``classify``, ``search``.

Each job is ``run_<name>(params, progress) -> summary dict``: ``params`` is a frozen dataclass
built by the CLI (or any other caller), ``progress`` a :class:`geo_dfm.progress.Progress`.
The summary follows the contract in ``docs/architecture.md`` (``Job outputs``).
"""
