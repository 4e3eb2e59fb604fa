"""The life cycle shared by block-fed raster writers: a staging raster beside the output, then one atomic move.

:class:`StagedOutput` opens ``atomic_file(path)`` and a temporary folder beside ``path``, creates the
staging raster there (``_staging_profile()``), lets the subclass write into ``self._dst`` block by block,
and on :meth:`close` closes it, calls ``_finish()`` (which turns ``self._staging`` into ``self._tmp``:
a COG copy, a PNG copy) and moves the result into place. :meth:`abort` — and leaving a ``with`` block by
an exception — drops everything and leaves an existing ``path`` untouched. GDAL runs with a small block
cache (:func:`gdal_env`) around every call, so memory stays flat whatever the output size.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import rasterio
import rasterio.io
from rasterio.errors import NotGeoreferencedWarning

from tile_tools.atomic import atomic_file

#: GDAL block cache (MiB) while writing; keeps memory flat for huge outputs.
WRITE_CACHE_MB = 4


def gdal_env() -> rasterio.Env:
    """GDAL settings around every call of a writer: a small block cache and swath."""
    return rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_MB, GDAL_SWATH_SIZE=WRITE_CACHE_MB * 2**20 // 2)


class StagedOutput:
    """Base of the block-fed writers (see the module docstring); subclasses define
    ``_staging_profile() -> (file name, rasterio profile)`` and ``_finish()``, and may override
    ``_before_close()`` (e.g. to flush buffered rows)."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stack: ExitStack | None = None
        self._dst: rasterio.io.DatasetWriter | None = None

    def _staging_profile(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _before_close(self) -> None:
        """Hook run while the staging raster is still open."""

    def _finish(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> StagedOutput:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> StagedOutput:
        """Create the staging files (done by ``with``)."""
        if self._stack is not None:
            raise ValueError(f"{self.path}: writer already open")
        stack = ExitStack()
        try:
            self._tmp = stack.enter_context(atomic_file(self.path))
            prefix = f".{self.path.stem}."
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix, dir=self.path.parent))
            self._work = Path(work)
            name, profile = self._staging_profile()
            self._staging = self._work / name
            with gdal_env(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst = rasterio.open(self._staging, "w", **profile)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def _writer(self) -> rasterio.io.DatasetWriter:
        if self._dst is None:
            raise ValueError(f"{self.path}: writer is not open (use it in a with block)")
        return self._dst

    def close(self) -> Path:
        """Finish the output and move it into place (done by ``with``)."""
        if self._stack is None or self._dst is None:
            raise ValueError(f"{self.path}: writer is not open")
        try:
            self._before_close()
            with gdal_env(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst.close()
                self._dst = None
                self._finish()
        except BaseException:
            self.abort()
            raise
        stack, self._stack = self._stack, None
        stack.close()  # removes the staging folder, renames the output (and its .aux.xml) into place
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; ``path`` is left as it was."""
        if self._dst is not None:
            try:
                self._dst.close()
            finally:
                self._dst = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.__exit__(RuntimeError, RuntimeError(f"{self.path}: writing aborted"), None)
