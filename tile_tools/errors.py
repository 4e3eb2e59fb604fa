"""Errors raised by tile_tools (and reused by geo_dfm).

``InputError`` is the one class for *bad user input*: a missing or unreadable file, a scene
without CRS where one is needed, an AOI outside the scene... Its message always names the
file (or parameter) and the problem, and command-line front ends turn it into exit code 2.
"""

from __future__ import annotations

from os import PathLike


class TileToolsError(Exception):
    """Base class of every error tile_tools raises on purpose."""


class InputError(TileToolsError, ValueError):
    """Bad input from the user: names the file or parameter and says what is wrong."""

    def __init__(self, source: str | PathLike[str] | None, problem: str) -> None:
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(problem if self.source is None else f"{self.source}: {problem}")
