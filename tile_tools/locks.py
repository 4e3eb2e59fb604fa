"""One run per output: an exclusive, non-blocking lock on an output target, held for the whole run.

The lock is an OS file lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on a small file under
``$GEO_DFM_CACHE/locks/`` (default ``~/.cache/geo-dfm/locks/``), named by a hash of the resolved
target path. It lives neither beside the output nor in the temp dir, so it never shows up among a
user's files, and the OS releases it when the process dies (even on SIGKILL). Lock files are small
and kept (removing a lock file while another process may open it would break the exclusion).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tile_tools.errors import InputError

LOCK_DIR_ENV = "GEO_DFM_CACHE"


def lock_directory() -> Path:
    """``$GEO_DFM_CACHE/locks`` or ``~/.cache/geo-dfm/locks`` (read at call time)."""
    root = os.environ.get(LOCK_DIR_ENV) or str(Path.home() / ".cache" / "geo-dfm")
    return Path(root) / "locks"


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of ``target`` (resolved, so two spellings of one path share a lock)."""
    key = hashlib.sha256(str(Path(target).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return lock_directory() / f"{key}.lock"


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class TargetLock:
    """Exclusive lock on an output ``target`` (context manager, or :meth:`acquire`/:meth:`release`).

    A second holder, in this or any other process, gets an :class:`InputError` at once naming the
    target (and the pid of the run holding it).
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        self.path = lock_path(target)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> TargetLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.target}: lock already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise InputError(
                self.target,
                f"another geo-dfm run{who} is writing this output; wait for it to end or choose another",
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{Path(self.target).resolve()}\n".encode("utf-8", "surrogateescape"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def __enter__(self) -> TargetLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("utf-8", "replace")
    except OSError:  # pragma: no cover - Windows has no pread
        return ""
    first = text.split("\n", 1)[0].strip()
    return first if first.isdigit() else ""
