"""What geo-dfm wrote: the hidden manifest of an output folder, and the marker of an unfinished one.

At commit an output folder gets ``.geo-dfm-output.json`` (command, version, creation time, and every
file and sub-folder written, as relative POSIX paths). It is what makes a folder *ours*: ``overwrite``
replaces only a folder carrying it and holding nothing it does not list. While a run writes, its
temporary folder holds ``.geo-dfm-partial`` instead, so a stale one (a killed run) can be recognised
and swept without touching anything else.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

MANIFEST_NAME = ".geo-dfm-output.json"
PARTIAL_MARKER = ".geo-dfm-partial"
_INTERNAL = {MANIFEST_NAME, PARTIAL_MARKER, MANIFEST_NAME + ".tmp"}
_FORMAT = 1


@dataclass(frozen=True)
class OutputManifest:
    """The record of one committed output folder: ``files`` and ``folders`` relative to it."""

    command: str
    version: str
    created: str
    files: tuple[str, ...]
    folders: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "geo_dfm_output": _FORMAT,
                "command": self.command,
                "version": self.version,
                "created": self.created,
                "files": list(self.files),
                "folders": list(self.folders),
            },
            indent=1,
        )


def _entries(folder: Path) -> Iterator[tuple[str, bool]]:
    """(relative POSIX path, is_folder) of everything below ``folder`` (symlinks are not followed)."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root).relative_to(folder)
        for name in dirs:
            path = Path(root) / name
            yield (base / name).as_posix(), not path.is_symlink()
        for name in files:
            if base == Path(".") and name in _INTERNAL:
                continue
            yield (base / name).as_posix(), False


def record_folder(folder: Path, command: str, version: str) -> OutputManifest:
    """A manifest listing everything now in ``folder`` (written by this run)."""
    files, folders = [], []
    for rel, is_folder in _entries(folder):
        (folders if is_folder else files).append(rel)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return OutputManifest(command, version, created, tuple(sorted(files)), tuple(sorted(folders)))


def write_manifest(folder: Path, manifest: OutputManifest) -> None:
    """Write ``folder/.geo-dfm-output.json`` (temporary name, then rename)."""
    tmp = folder / (MANIFEST_NAME + ".tmp")
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_NAME)


def read_manifest(folder: Path) -> OutputManifest | None:
    """The manifest of ``folder``, or ``None`` when it has none (or an unreadable one)."""
    path = folder / MANIFEST_NAME
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("geo_dfm_output") != _FORMAT:
            return None
        return OutputManifest(
            command=str(data.get("command", "")),
            version=str(data.get("version", "")),
            created=str(data.get("created", "")),
            files=tuple(str(f) for f in data["files"]),
            folders=tuple(str(f) for f in data.get("folders", ())),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def foreign_entries(folder: Path, manifest: OutputManifest, limit: int = 5) -> list[str]:
    """Up to ``limit`` entries of ``folder`` the manifest does not list (folders holding only listed
    files count as listed)."""
    files = set(manifest.files)
    folders = set(manifest.folders) | {p for f in files for p in _parents(f)}
    found: list[str] = []
    for rel, is_folder in _entries(folder):
        if (rel not in folders) if is_folder else (rel not in files):
            found.append(rel + ("/" if is_folder else ""))
            if len(found) >= limit:
                break
    return found


def _parents(rel: str) -> Iterator[str]:
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def remove_listed(folder: Path, manifest: OutputManifest) -> bool:
    """Delete the manifest's files and folders below ``folder`` (only those), then ``folder`` itself if
    empty. Returns True when ``folder`` is gone (False: something unlisted was kept)."""
    for rel in manifest.files:
        path = folder / rel
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
    folders = set(manifest.folders) | {p for f in manifest.files for p in _parents(f)}
    for rel in sorted(folders, key=lambda r: r.count("/"), reverse=True):
        with contextlib.suppress(OSError):  # not empty (something unlisted inside) or already gone
            (folder / rel).rmdir()
    if any(entry.name not in _INTERNAL for entry in os.scandir(folder)):
        return False  # keep the manifest beside what was kept, so the folder stays recognisable
    for name in _INTERNAL:
        (folder / name).unlink(missing_ok=True)
    folder.rmdir()
    return True
