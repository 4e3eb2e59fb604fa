"""Output targets that never lose data: locked, checked, written beside, committed by rename.

One run writes one target (a folder, or a single file) through :class:`OutputFolder` /
:class:`OutputFile`:

1. :func:`check_output_location` (well under a second): the target's parent is a folder we can
   write in. Jobs call it first, before any compute.
2. an exclusive :class:`~tile_tools.locks.TargetLock` on the target, held until the end: a second
   run on the same target fails at once;
3. stale temporary twins of the target (``.<name>.<hex>.tmp`` / ``.old`` left by a killed run) are
   swept: unfinished ones removed, a complete one whose rename was interrupted restored;
4. an existing target is replaced only with ``overwrite`` and only when it is ours: a folder carrying
   geo-dfm's manifest and nothing it does not list (:mod:`tile_tools.manifest`); a file the caller's
   ``is_ours`` predicate recognises. Never a target that is, or holds, an input of the run, the
   current folder or one of its parents, ``/`` or the home folder;
5. the content is written into the temporary twin (it exists from the start, so outputs can be
   streamed into it block by block) and renamed into place at the end; a failure removes it and
   leaves any old target byte-identical.

User-facing errors name the target, never the hidden temporary twin.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType

from tile_tools.errors import InputError
from tile_tools.locks import TargetLock
from tile_tools.manifest import (
    MANIFEST_NAME,
    PARTIAL_MARKER,
    foreign_entries,
    read_manifest,
    record_folder,
    remove_listed,
    write_manifest,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
SIDECARS = (".aux.xml", "-wal", "-shm", "-journal", ".ovr")
OVERWRITE_HINT = "replace it with the overwrite option (--overwrite on the command line)"
_SHOWN = 5
_DISK_FULL_BYTES = 1 << 20


def twin_name(target: Path, kind: str) -> str:
    """A fresh hidden twin name: ``.<name>.<12 hex>.<kind>`` (folders) or ``.<stem>.<hex>.tmp<suffix>``."""
    token = uuid.uuid4().hex[:12]
    if kind == "file":
        return f".{target.stem}.{token}.tmp{target.suffix}"
    return f".{target.name}.{token}.{kind}"


def _folder_twin_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(target.name)}\.[0-9a-f]{{12}}\.(?:tmp|old)$")


def _file_twin_pattern(target: Path) -> re.Pattern[str]:
    sidecars = "|".join(re.escape(s) for s in SIDECARS)
    return re.compile(
        rf"^\.{re.escape(target.stem)}\.[0-9a-f]{{12}}\.tmp{re.escape(target.suffix)}(?:{sidecars})?$"
    )


# --- where ---------------------------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or "/")


def check_output_location(target: PathLike, kind: str = "folder") -> Path:
    """Fail fast (``InputError`` naming ``target``) unless ``target`` can be created: its nearest existing
    parent is a folder this process can write in (probed with a tiny file, so read-only mounts, ACLs and
    root are judged right), and an existing ``target`` is of the right ``kind`` (``folder``/``file``).

    Returns the absolute target path. Creates nothing that stays.
    """
    if kind not in ("folder", "file"):
        raise ValueError(f"kind must be 'folder' or 'file', got {kind!r}")
    if not str(target).strip():
        raise InputError("output", "no output path given")
    path = Path(os.path.abspath(target))
    if os.path.lexists(path):
        if kind == "folder" and not path.is_dir():
            raise InputError(target, "exists and is a file, not a folder")
        if kind == "file" and path.is_dir():
            raise InputError(target, "exists and is a folder, not a file")
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        raise InputError(target, f"{parent} is a file, not a folder")
    probe = parent / f".geo-dfm-probe-{uuid.uuid4().hex[:12]}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise InputError(target, f"cannot write in {parent} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path


# --- what must never be replaced -----------------------------------------------------------------
_ARCHIVE_PREFIX = re.compile(r"^/vsi(?:zip|tar|gzip|7z|rar|subfile)/")


def local_input_paths(inputs: Iterable[PathLike]) -> list[Path]:
    """The on-disk paths behind ``inputs`` (absolute and symlink-resolved forms, both kept): plain
    paths as given; ``/vsizip//x.zip/a.tif``-style paths → the archive file; URLs, ``/vsimem/``,
    ``/vsicurl/`` and inline VRTs have none."""
    paths: list[Path] = []
    for item in inputs:
        text = str(item)
        if text.lstrip().startswith("<") or "://" in text:
            continue
        if text.startswith("/vsi"):
            rest = text
            while _ARCHIVE_PREFIX.match(rest):
                rest = _ARCHIVE_PREFIX.sub("", rest, count=1)
            if rest == text or rest.startswith("/vsi") or "://" in rest:
                continue
            local = Path(rest)
            found = next(
                (p for p in (local, *local.parents) if os.path.lexists(p) and p != Path(p.anchor)), None
            )
            if found is None:
                continue
            text = str(found)
        paths.append(Path(os.path.abspath(text)))
        paths.append(Path(text).resolve())
    return paths


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def protection_reason(target: PathLike, inputs: Iterable[PathLike] = ()) -> str | None:
    """Why ``target`` must never be replaced, or ``None``: it is or holds an input, the current folder
    or a parent of it, ``/`` or the home folder (or a parent of it)."""
    forms = {Path(os.path.abspath(target)), Path(target).resolve()}
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    for form in forms:
        if form == Path(form.anchor):
            return "it is the root of the file system"
        if _is_within(home, form):
            return "it is the home folder" if form == home else "it holds the home folder"
        if _is_within(cwd, form):
            return "it is the current folder" if form == cwd else "it holds the current folder"
        for path in local_input_paths(inputs):
            if _is_within(path, form):
                return (
                    "it is an input of this run"
                    if path == form
                    else f"it holds an input of this run ({path})"
                )
    return None


def _listing(names: list[str], total: int | None = None) -> str:
    shown = ", ".join(names[:_SHOWN])
    more = (total if total is not None else len(names)) - min(len(names), _SHOWN)
    return shown + (f" and {more} more" if more > 0 else "")


def check_folder_replaceable(target: PathLike, inputs: Iterable[PathLike] = ()) -> None:
    """``InputError`` unless the existing folder ``target`` may be replaced by a new output: not
    protected (:func:`protection_reason`), not a symlink, carrying geo-dfm's manifest and nothing it
    does not list. The message names what would be lost."""
    path = Path(target)
    if path.is_symlink():
        raise InputError(target, "not replaced: it is a symbolic link (give the folder it points to)")
    if not path.is_dir():
        raise InputError(target, "not replaced: it exists and is not a folder")
    reason = protection_reason(path, inputs)
    if reason:
        raise InputError(target, f"not replaced: {reason}")
    manifest = read_manifest(path)
    if manifest is None:
        names, total = [], 0
        with os.scandir(path) as entries:
            for entry in entries:
                total += 1
                if len(names) < _SHOWN:
                    names.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
        if total:
            raise InputError(
                target,
                f"not replaced: it was not written by geo-dfm (no {MANIFEST_NAME}) and replacing it would "
                f"delete {_listing(names, total)}; choose another output folder",
            )
        return  # an empty folder: nothing can be lost
    foreign = foreign_entries(path, manifest, limit=_SHOWN + 1)
    if foreign:
        raise InputError(
            target,
            f"not replaced: it holds files geo-dfm did not write ({_listing(foreign)}) that would be lost; "
            "move them away or choose another output folder",
        )


def check_file_target(
    target: PathLike,
    *,
    overwrite: bool,
    is_ours: Callable[[Path], bool],
    inputs: Iterable[PathLike] = (),
    what: str = "geo-dfm output",
) -> None:
    """``InputError`` unless a single-file output may be written at ``target``: never an input of the
    run; an existing file only with ``overwrite`` and only if ``is_ours(path)`` recognises it as the
    kind of file written there (``what`` names that kind in the message)."""
    path = Path(target)
    forms = {Path(os.path.abspath(path)), path.resolve()}
    for candidate in local_input_paths(inputs):
        if candidate in forms:
            raise InputError(target, "not replaced: it is an input of this run")
    if not os.path.lexists(path):
        return
    if path.is_symlink():
        raise InputError(target, "not replaced: it is a symbolic link")
    if path.is_dir():
        raise InputError(target, "exists and is a folder, not a file")
    if not overwrite:
        raise InputError(target, f"output file exists ({OVERWRITE_HINT})")
    if not is_ours(path):
        raise InputError(target, f"not replaced: it is not a {what}")


# --- stale twins -----------------------------------------------------------------------------------
def sweep_stale_twins(target: PathLike) -> list[str]:
    """Clean up what killed runs left beside ``target`` (call while holding the target's lock).

    Folder twins: an unfinished one (``.geo-dfm-partial`` inside) is removed; a complete one (manifest
    inside) becomes ``target`` when ``target`` is missing (a rename that was interrupted), else only its
    listed files are removed. File twins (``.<stem>.<hex>.tmp<suffix>`` and GDAL/SQLite sidecars) are
    removed. Anything else is left alone. Returns the names handled.
    """
    path = Path(os.path.abspath(target))
    parent = path.parent
    if not parent.is_dir():
        return []
    folder_re, file_re = _folder_twin_pattern(path), _file_twin_pattern(path)
    complete: list[tuple[str, Path]] = []
    handled: list[str] = []
    for entry in list(os.scandir(parent)):
        twin = Path(entry.path)
        if entry.is_dir(follow_symlinks=False) and folder_re.match(entry.name):
            manifest = read_manifest(twin)
            if manifest is not None:
                complete.append((manifest.created, twin))
            elif (twin / PARTIAL_MARKER).is_file():
                shutil.rmtree(twin, ignore_errors=True)
                handled.append(entry.name)
        elif entry.is_file(follow_symlinks=False) and file_re.match(entry.name):
            twin.unlink(missing_ok=True)
            handled.append(entry.name)
    for _, twin in sorted(complete, reverse=True):  # newest first
        if not os.path.lexists(path):
            os.replace(twin, path)
            log.warning("%s: restored the output of an interrupted run", path)
        else:
            manifest = read_manifest(twin)
            if manifest is not None:
                remove_listed(twin, manifest)
        handled.append(twin.name)
    return handled


# --- committing ---------------------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders created (deepest last)."""
    missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    for p in reversed(missing):
        p.mkdir()
    return list(reversed(missing))


def _remove_created(created: list[Path]) -> None:
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


def _disk_full_error(target: Path, folder: Path, exc: BaseException) -> InputError | None:
    if isinstance(exc, InputError) or not isinstance(exc, Exception):
        return None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InputError(target, "the disk is full; free some space or choose another output location")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < _DISK_FULL_BYTES:
        return InputError(
            target,
            f"writing failed with {free} bytes left on its disk ({type(exc).__name__}: {exc}); free some space "
            "or choose another output location",
        )
    return None


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("geo-dfm")
    except PackageNotFoundError:
        return "unknown"


class OutputFolder:
    """One run's output folder: locked, checked and written beside the target, renamed in at the end.

    ``with OutputFolder(target, overwrite=..., inputs=[...], command="localize") as out:`` write into
    ``out.path`` (the temporary twin, there from the start); a normal exit commits (manifest + rename),
    an exception removes the twin and leaves an old target byte-identical. ``inputs``: every file or
    folder the run reads (scenes, AOI, labels, adapters, …); a target that is or holds one is never
    replaced. A disk-full failure becomes an :class:`InputError` naming the target.
    """

    def __init__(
        self,
        target: PathLike,
        *,
        overwrite: bool = False,
        inputs: Iterable[PathLike] = (),
        command: str = "",
        version: str | None = None,
    ) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        self.inputs = [str(p) for p in inputs]
        self.command = command
        self.version = version
        self._tmp: Path | None = None
        self._lock: TargetLock | None = None
        self._created: list[Path] = []

    @property
    def path(self) -> Path:
        """The temporary folder to write into (while open)."""
        if self._tmp is None:
            raise RuntimeError(f"{self.target}: the output folder is not open")
        return self._tmp

    def _check_existing(self) -> None:
        if not os.path.lexists(self.target):
            return
        if not self.overwrite:
            if not self.target.is_dir():
                raise InputError(self.target, "output path exists and is not a folder")
            raise InputError(self.target, f"output folder exists ({OVERWRITE_HINT})")
        check_folder_replaceable(self.target, self.inputs)

    def open(self) -> OutputFolder:
        """Check, lock, sweep, create the temporary twin."""
        absolute = check_output_location(self.target, "folder")
        self._created = _make_parents(absolute.parent)
        lock = TargetLock(absolute)
        try:
            lock.acquire()
            self._lock = lock
            sweep_stale_twins(absolute)
            self._check_existing()
            tmp = absolute.parent / twin_name(absolute, "tmp")
            tmp.mkdir()  # unlike mkdtemp (0700), honours the umask like any output folder
            (tmp / PARTIAL_MARKER).write_text(f"{os.getpid()}\n", encoding="utf-8")
            self._tmp = tmp
        except BaseException:
            self.abort()
            raise
        return self

    def commit(self) -> Path:
        """Write the manifest, rename the twin into place (replacing a checked old output), unlock."""
        try:
            target = self._commit()
        except BaseException as exc:
            self._fail(exc)
            raise
        self._created = []
        self._unlock()
        return target

    def _commit(self) -> Path:
        tmp = self.path
        manifest = record_folder(tmp, self.command, self.version or _package_version())
        write_manifest(tmp, manifest)
        (tmp / PARTIAL_MARKER).unlink(missing_ok=True)
        target = Path(os.path.abspath(self.target))
        if not os.path.lexists(target):
            os.replace(tmp, target)
            self._tmp = None
            return target
        if not self.overwrite:
            raise InputError(
                self.target, f"appeared while this run was writing; not replaced ({OVERWRITE_HINT})"
            )
        check_folder_replaceable(self.target, self.inputs)  # again: files may have been added meanwhile
        old = target.parent / twin_name(target, "old")
        if _exchange(tmp, target):
            self._tmp = None
            os.replace(tmp, old)  # the twin's name now holds the old output
        else:
            os.replace(target, old)
            os.replace(tmp, target)
            self._tmp = None
        old_manifest = read_manifest(old)
        if old_manifest is not None and not remove_listed(old, old_manifest):
            log.warning("%s: files added to the old output during the run were kept in %s", target, old)
        return target

    def abort(self) -> None:
        """Remove the temporary twin and the parent folders this run created (never the target), unlock."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        _remove_created(self._created)
        self._created = []
        self._unlock()

    def _fail(self, exc: BaseException) -> None:
        """Abort after ``exc``; raise an ``InputError`` instead when the disk was full."""
        full = _disk_full_error(self.target, self._tmp or self.target.parent, exc)
        self.abort()
        if full is not None:
            raise full from exc

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.commit()
        else:
            self._fail(exc)


class OutputFile:
    """One run's single-file output (a GeoPackage, an index): locked, checked, written beside, renamed in.

    ``with OutputFile(target, overwrite=..., is_ours=..., inputs=[...]) as tmp:`` write the file at
    ``tmp`` (same suffix, so GDAL picks the same driver). An existing ``target`` is replaced only with
    ``overwrite`` and when ``is_ours(target)`` says it is the kind of file written there; checked again
    just before the rename.
    """

    def __init__(
        self,
        target: PathLike,
        *,
        overwrite: bool = False,
        is_ours: Callable[[Path], bool],
        inputs: Iterable[PathLike] = (),
        what: str = "geo-dfm output",
    ) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        self.is_ours = is_ours
        self.inputs = [str(p) for p in inputs]
        self.what = what
        self._context: AbstractContextManager[Path] | None = None

    def _check(self) -> None:
        check_file_target(
            self.target, overwrite=self.overwrite, is_ours=self.is_ours, inputs=self.inputs, what=self.what
        )

    @contextmanager
    def _run(self) -> Iterator[Path]:
        absolute = check_output_location(self.target, "file")
        created = _make_parents(absolute.parent)
        committed = False
        try:
            with TargetLock(absolute):
                sweep_stale_twins(absolute)
                self._check()
                with _atomic_file(absolute, before_replace=self._check) as tmp:
                    try:
                        yield tmp
                    except Exception as exc:
                        full = _disk_full_error(self.target, absolute.parent, exc)
                        if full is not None:
                            raise full from exc
                        raise
                committed = True
        finally:
            if not committed:
                _remove_created(created)

    def __enter__(self) -> Path:
        self._context = self._run()
        return self._context.__enter__()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._context is not None
        context, self._context = self._context, None
        return context.__exit__(exc_type, exc, tb)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def _atomic_file(target: Path, before_replace: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield a fresh temporary twin of ``target``; on success (after ``before_replace``) it replaces
    ``target`` (with its ``.aux.xml``); on an exception it and its sidecars are removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / twin_name(target, "file")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{target}: the writer produced no file")
        if before_replace is not None:
            before_replace()
        os.replace(tmp, target)
        aux = tmp.with_name(tmp.name + ".aux.xml")
        if aux.exists():
            os.replace(aux, target.with_name(target.name + ".aux.xml"))
    finally:
        for leftover in [tmp, *(tmp.with_name(tmp.name + ext) for ext in SIDECARS)]:
            if os.path.lexists(leftover):
                _remove(leftover)
