"""Atomic outputs: write to a temporary sibling, rename into place only on success.

A failed or interrupted write never leaves a half-written file or folder behind. ``atomic_file`` is
the plain building block (writers use it inside an output folder, caches beside their files);
whole run outputs go through :class:`tile_tools.output.OutputFolder` / ``OutputFile`` (lock, overwrite
checks, stale-twin sweep), which ``atomic_directory`` wraps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tile_tools.output import OutputFolder, _atomic_file


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so GDAL picks the same driver).

    On normal exit the temporary file replaces ``path``; on an exception it is removed and
    ``path`` is left untouched. No overwrite check: run outputs use ``OutputFile``.
    """
    with _atomic_file(Path(path)) as tmp:
        yield tmp


@contextmanager
def atomic_directory(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    command: str = "",
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` only on success.

    The rules of :class:`~tile_tools.output.OutputFolder` apply (lock, manifest, an existing ``path``
    replaced only with ``overwrite`` and only when geo-dfm wrote it and it holds no input).
    """
    with OutputFolder(path, overwrite=overwrite, inputs=inputs, command=command) as out:
        yield out.path
