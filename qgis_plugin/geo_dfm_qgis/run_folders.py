"""Names for the panel's output folders: ``<root>/<mode>-<date>-<time>[-N]``, unique within the session
and never an existing path (two runs started in the same second get ``-2``, ``-3``, …). Pure Python."""

from __future__ import annotations

import os
import threading
import time

_issued: set[str] = set()
_lock = threading.Lock()


def new_run_folder(root: str, mode: str, now: float | None = None) -> str:
    """A folder path for a new run that does not exist yet and was not handed out before."""
    base = os.path.join(root, f"{mode}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}")
    with _lock:
        candidate, number = base, 2
        while candidate in _issued or os.path.lexists(candidate):
            candidate, number = f"{base}-{number}", number + 1
        _issued.add(candidate)
    return candidate
