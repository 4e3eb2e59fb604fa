"""``journal.jsonl``: what happened to each scene of a batch run, one line per finished scene.

Only the run's single writer (the process that started the run) appends, one whole line per
``os.write`` on an ``O_APPEND`` descriptor, fsynced before the call returns; so after a kill at any
moment the journal holds every scene recorded so far and at most one torn last line, which reading
ignores (and the next append starts on a fresh line). A scene may appear more than once (a failed
scene retried by ``--resume``): the last line wins.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class SceneRecord:
    """The outcome of one scene.

    ``status`` ``"done"`` or ``"failed"``; ``code`` the exit status of the failure (0 when done, see
    :func:`geo_dfm.errors.exit_status`) and ``error`` its one-line message; ``started``/``finished`` UTC
    ISO times and ``seconds`` wall time, ``jobs`` seconds per job; ``chips`` encoded (all jobs); ``crs``
    and ``footprint`` (WKT polygon in that CRS) of the scene's bounds, ``None`` when unknown;
    ``worker`` the host and process that ran it.
    """

    scene: str
    source: str
    status: str
    started: str
    finished: str
    seconds: float
    chips: int = 0
    code: int = 0
    error: str | None = None
    crs: str | None = None
    footprint: str | None = None
    jobs: dict[str, float] = field(default_factory=dict)
    worker: str = ""

    @property
    def done(self) -> bool:
        return self.status == DONE

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneRecord:
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})


class Journal:
    """The journal file of a run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, SceneRecord]:
        """The last record of every scene in the journal (an empty dict when there is none)."""
        if not self.path.exists():
            return {}
        records: dict[str, SceneRecord] = {}
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    log.warning("%s: line %d was cut short (the run was killed); ignored", self.path, number)
                    continue
                try:
                    record = SceneRecord.from_dict(json.loads(raw))
                except (ValueError, TypeError) as exc:
                    log.warning("%s: line %d is not a scene record (%s); ignored", self.path, number, exc)
                    continue
                records[record.scene] = record
        return records

    def append(self, record: SceneRecord) -> None:
        """Add ``record`` durably (one write, fsync)."""
        line = record.to_json().encode("utf-8") + b"\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if _ends_torn(fd):
                line = b"\n" + line  # terminate a torn line left by a killed run
            while line:
                line = line[os.write(fd, line) :]
            os.fsync(fd)
        finally:
            os.close(fd)


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
