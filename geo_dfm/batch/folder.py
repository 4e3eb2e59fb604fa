"""The output folder of a batch run: ``OUT/``, kept across runs so ``--resume`` can continue it.

Layout (every name below is written by the run; nothing else in OUT is ever touched)::

    OUT/run.json                        what the run is (jobs, parameters, scenes): its identity
    OUT/journal.jsonl                   one line per finished scene (geo_dfm.batch.journal)
    OUT/scenes/<id>/<job>/              each a single-scene job's output folder, committed atomically
    OUT/annotations.gpkg                the run's GeoPackage (single writer, atomic, at the end)
    OUT/mosaics/<kind>.vrt              one mosaic per output kind; mosaics/warped/<id>_<kind>.vrt
    OUT/summary.json                    the run's summary
    OUT/.geo-dfm-output.json            the manifest, written last: the run is finished

Unlike a single-scene job, a batch run writes in place (its per-scene results must survive a kill),
so the rules of :mod:`tile_tools.output` are applied to what a run writes rather than to a temporary
twin: the folder is locked for the run (:class:`~tile_tools.locks.TargetLock`); a new run on an existing,
non-empty OUT is refused unless ``resume`` (same ``run.json`` identity: same scenes and parameters) or
``overwrite``; ``overwrite`` removes only what an earlier run wrote (a finished or unfinished annotate
run: the files the manifest would list; any other geo-dfm output folder: its manifest) and refuses a
folder holding anything else, an input of the run, the current or home folder.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import zip_longest
from pathlib import Path
from types import TracebackType
from typing import Any

from geo_dfm.batch.sources import SceneRef
from tile_tools.atomic import atomic_file
from tile_tools.errors import InputError
from tile_tools.locks import TargetLock
from tile_tools.manifest import (
    MANIFEST_NAME,
    OutputManifest,
    foreign_entries,
    read_manifest,
    remove_listed,
    write_manifest,
)
from tile_tools.output import (
    SIDECARS,
    check_folder_replaceable,
    check_output_location,
    protection_reason,
    sweep_stale_twins,
)

RUN_RECORD = "run.json"
JOURNAL = "journal.jsonl"
SCENES = "scenes"
MOSAICS = "mosaics"
WARPED = f"{MOSAICS}/warped"
GEOPACKAGE = "annotations.gpkg"
SUMMARY = "summary.json"
COMMAND = "annotate"
_FORMAT = 1
_SHOWN = 5


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class RunRecord:
    """What a run is (``run.json``): the per-scene ``jobs`` in run order, ``parameters`` (JSON-ready,
    everything that shapes the outputs; not the engine), the ``scenes`` and the ``mosaics`` kinds it
    writes. Runs with equal records write the same outputs, so one may resume another."""

    jobs: tuple[str, ...]
    parameters: dict[str, Any]
    scenes: tuple[SceneRef, ...]
    mosaics: tuple[str, ...]

    @classmethod
    def of(
        cls,
        jobs: Sequence[str],
        parameters: dict[str, Any],
        scenes: Sequence[SceneRef],
        mosaics: Sequence[str],
    ) -> RunRecord:
        return cls(tuple(jobs), _json_ready(parameters), tuple(scenes), tuple(mosaics))

    def to_json(self, version: str) -> str:
        return json.dumps(
            {
                "geo_dfm_batch": _FORMAT,
                "command": COMMAND,
                "version": version,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "jobs": list(self.jobs),
                "parameters": self.parameters,
                "scenes": [scene.to_dict() for scene in self.scenes],
                "mosaics": list(self.mosaics),
            },
            indent=1,
        )

    @classmethod
    def read(cls, folder: Path) -> RunRecord | None:
        """The record in ``folder/run.json``, or ``None`` (missing, unreadable, not ours)."""
        path = folder / RUN_RECORD
        if path.is_symlink() or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("geo_dfm_batch") != _FORMAT:
                return None
            scenes = tuple(SceneRef(str(s["id"]), str(s["source"])) for s in data["scenes"])
            return cls(tuple(data["jobs"]), dict(data["parameters"]), scenes, tuple(data["mosaics"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def differences(self, other: RunRecord) -> list[str]:
        """What differs between this (earlier) record and ``other``, in words."""
        found = []
        if self.jobs != other.jobs:
            found.append(f"jobs {', '.join(self.jobs)} then, {', '.join(other.jobs)} now")
        for key in sorted(set(self.parameters) | set(other.parameters)):
            then, now = self.parameters.get(key), other.parameters.get(key)
            if then != now:
                found.append(f"{key} {json.dumps(then)} then, {json.dumps(now)} now")
        if self.scenes != other.scenes:
            changed = [
                f"#{i + 1} {a.source if a else '-'} then, {b.source if b else '-'} now"
                for i, (a, b) in enumerate(zip_longest(self.scenes, other.scenes))
                if a != b
            ]
            found.append(f"scenes ({len(changed)} differ: {'; '.join(changed[:3])})")
        return found


class BatchFolder:
    """``OUT`` of one batch run (see the module docstring): ``with BatchFolder(...) as folder:``.

    ``resumed`` tells whether an earlier run with the same record is being continued. Leaving the
    ``with`` unlocks; after an exception, a folder this run created is removed again as long as no
    scene was journaled (a run that failed to start leaves nothing behind).
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        record: RunRecord,
        *,
        resume: bool = False,
        overwrite: bool = False,
        inputs: Iterable[str] = (),
        version: str = "",
    ) -> None:
        if resume and overwrite:
            raise InputError("resume", "give either resume or overwrite, not both")
        self.target = Path(target)
        self.record = record
        self.resume = resume
        self.overwrite = overwrite
        self.inputs = [str(p) for p in inputs]
        self.version = version
        self.path = Path(os.path.abspath(target))
        self.resumed = False
        self._created = False
        self._parents: list[Path] = []
        self._lock: TargetLock | None = None

    # --- where things go ------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def job_folder(self, scene_id: str, job: str) -> Path:
        return self.path / SCENES / scene_id / job

    # --- life cycle -----------------------------------------------------------------------------
    def open(self) -> BatchFolder:
        self.path = check_output_location(self.target, "folder")
        self._parents = [p for p in self.path.parents if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = TargetLock(self.path).acquire()
        try:
            self._open_locked()
        except BaseException:
            self._unlock()
            raise
        return self

    def _open_locked(self) -> None:
        path = self.path
        if path.is_dir() and any(os.scandir(path)):
            earlier = RunRecord.read(path)
            if self.resume:
                self._continue(earlier)
                return
            if not self.overwrite:
                hint = "use --resume to continue it" if earlier else "choose another output folder"
                raise InputError(self.target, f"output folder exists ({hint}, or --overwrite to replace it)")
            clear_folder(path, self.inputs)
        self._created = not path.exists()
        path.mkdir(exist_ok=True)
        with atomic_file(path / RUN_RECORD) as tmp:
            tmp.write_text(self.record.to_json(self.version), encoding="utf-8")

    def _continue(self, earlier: RunRecord | None) -> None:
        if earlier is None:
            raise InputError(
                self.target, "cannot resume: not the output folder of a geo-dfm annotate run (no run.json)"
            )
        differences = earlier.differences(self.record)
        if differences:
            raise InputError(
                "resume",
                f"{self.target} was started with other settings ({'; '.join(differences)}); resume with the "
                "same scenes and parameters, or choose another output folder",
            )
        protected = protection_reason(self.path, self.inputs)
        if protected:
            raise InputError(self.target, f"cannot write here: {protected}")
        sweep_run_twins(self.path, earlier)
        (self.path / MANIFEST_NAME).unlink(missing_ok=True)  # unfinished again until commit()
        self.resumed = True

    def commit(self) -> None:
        """The run is finished: write the manifest listing everything it wrote."""
        write_manifest(self.path, written_manifest(self.path, self.record, self.version))

    def close(self, failed: bool = False) -> None:
        if failed and self._created and not (self.path / JOURNAL).exists():
            _remove_new_folder(self.path, self._parents)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> BatchFolder:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(failed=exc is not None)


# --- what a run wrote -----------------------------------------------------------------------------------


def _with_sidecars(folder: Path, rel: str) -> list[str]:
    return [rel + ext for ext in ("", *SIDECARS) if (folder / (rel + ext)).is_file()]


def written_manifest(folder: Path, record: RunRecord, version: str = "") -> OutputManifest:
    """The manifest of what runs with ``record`` wrote into ``folder`` (and exists now): the run's own
    files, and each per-scene job folder with everything its own manifest lists."""
    files: list[str] = []
    folders: list[str] = []
    for name in (RUN_RECORD, JOURNAL, GEOPACKAGE, SUMMARY):
        files += _with_sidecars(folder, name)
    for scene in record.scenes:
        scene_rel = f"{SCENES}/{scene.id}"
        for job in record.jobs:
            rel = f"{scene_rel}/{job}"
            manifest = read_manifest(folder / rel)
            if manifest is None:
                continue
            files += [f"{rel}/{name}" for name in (*manifest.files, MANIFEST_NAME)]
            folders += [rel, *(f"{rel}/{sub}" for sub in manifest.folders)]
        if (folder / scene_rel).is_dir():
            folders.append(scene_rel)
        for kind in record.mosaics:
            files += _with_sidecars(folder, f"{WARPED}/{scene.id}_{kind}.vrt")
    for kind in record.mosaics:
        files += _with_sidecars(folder, f"{MOSAICS}/{kind}.vrt")
    folders += [name for name in (SCENES, MOSAICS, WARPED) if (folder / name).is_dir()]
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return OutputManifest(COMMAND, version, created, tuple(sorted(files)), tuple(sorted(folders)))


def sweep_run_twins(folder: Path, record: RunRecord) -> None:
    """Clean up the temporary twins killed runs left beside each output of ``record`` (their names
    follow :mod:`tile_tools.output`; nothing else is touched)."""
    targets = [folder / name for name in (RUN_RECORD, GEOPACKAGE, SUMMARY)]
    targets += [folder / SCENES / scene.id / job for scene in record.scenes for job in record.jobs]
    targets += [folder / MOSAICS / f"{kind}.vrt" for kind in record.mosaics]
    targets += [
        folder / WARPED / f"{scene.id}_{kind}.vrt" for scene in record.scenes for kind in record.mosaics
    ]
    for target in targets:
        sweep_stale_twins(target)


def clear_folder(folder: Path, inputs: Iterable[str] = ()) -> None:
    """Remove an earlier output from ``folder`` so a new run can start there, or raise an
    :class:`InputError` saying why not (see the module docstring)."""
    if folder.is_symlink():
        raise InputError(folder, "not replaced: it is a symbolic link (give the folder it points to)")
    reason = protection_reason(folder, inputs)
    if reason:
        raise InputError(folder, f"not replaced: {reason}")
    earlier = RunRecord.read(folder)
    if earlier is None:
        check_folder_replaceable(folder, inputs)  # another geo-dfm output, or an empty folder
        manifest = read_manifest(folder)
        if manifest is not None:
            remove_listed(folder, manifest)
        return
    sweep_run_twins(folder, earlier)
    listed = written_manifest(folder, earlier)
    foreign = foreign_entries(folder, listed, limit=_SHOWN + 1)
    if foreign:
        shown = ", ".join(foreign[:_SHOWN]) + (" and more" if len(foreign) > _SHOWN else "")
        raise InputError(
            folder,
            f"not replaced: it holds files geo-dfm did not write ({shown}) that would be lost; move them "
            "away or choose another output folder",
        )
    remove_listed(folder, listed)


def _remove_new_folder(folder: Path, parents: Sequence[Path]) -> None:
    """Undo a run that created ``folder`` (and its missing ``parents``) and failed before any scene
    finished."""
    for name in (RUN_RECORD, MANIFEST_NAME):
        (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # something else is in it now: leave it
        for path in (folder, *parents):
            path.rmdir()
