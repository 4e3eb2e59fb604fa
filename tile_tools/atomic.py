"""Atomic outputs: write to a temporary sibling, rename into place only on success.

A failed or interrupted write never leaves a half-written file or folder behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tile_tools.errors import InputError


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _sidecars(path: Path) -> list[Path]:
    """Files GDAL/SQLite may create next to ``path`` (aux.xml, -wal, -shm, -journal)."""
    return [path.with_name(path.name + ext) for ext in (".aux.xml", "-wal", "-shm", "-journal", ".ovr")]


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so GDAL picks the same driver).

    On normal exit the temporary file replaces ``path``; on an exception it is removed and
    ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers create it themselves (some drivers refuse an existing file)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{target}: the writer produced no file")
        os.replace(tmp, target)
        aux = tmp.with_name(tmp.name + ".aux.xml")
        if aux.exists():
            os.replace(aux, target.with_name(target.name + ".aux.xml"))
    finally:
        for leftover in [tmp, *_sidecars(tmp)]:
            if leftover.exists():
                _remove(leftover)


@contextmanager
def atomic_directory(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` only on success.

    An existing ``path`` is an :class:`InputError` unless ``overwrite`` is true, in which case
    it is replaced (only after the new content is complete).
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError(target, "output folder exists (use --overwrite to replace it)")
    if target.exists() and not target.is_dir():
        raise InputError(target, "output path exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()  # unlike mkdtemp (0700), honours the umask like any output folder
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            old.rmdir()
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
