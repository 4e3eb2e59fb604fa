"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint (``step-000120.pt`` in the run's checkpoint folder) holds the trainable tensors, the
optimizer, scheduler and gradient-scaler states, the random generators, the batcher's position,
the history so far and the run's fingerprint. It holds only tensors and plain Python values, is
written atomically and is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from tile_tools.atomic import atomic_file
from tile_tools.errors import InputError

CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^step-(\d{6,})\.pt$")


def checkpoint_path(folder: Path, step: int) -> Path:
    """``folder/step-<step, 6 digits>.pt``."""
    return folder / f"step-{step:06d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``folder``, oldest first (an absent folder has none)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (atomically) and drop all but the last ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(folder, step)
    with atomic_file(target) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "step": step, **state}, tmp)
    for _, old in list_checkpoints(folder)[: -max(1, keep)]:
        old.unlink(missing_ok=True)
    return target


def load_checkpoint(path: str | os.PathLike[str], fingerprint: str) -> dict[str, Any]:
    """The state saved in ``path``; a checkpoint of another run (other fingerprint) is an InputError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"not a readable geo-dfm training checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "not a geo-dfm training checkpoint (unknown format)")
    if state.get("fingerprint") != fingerprint:
        raise InputError(
            path,
            "this checkpoint belongs to a run with other data, model or settings; resume with the same "
            "arguments, or remove the checkpoint folder to start afresh",
        )
    return state


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint in ``folder`` (None when there is none)."""
    found = list_checkpoints(folder)
    return found[-1][1] if found else None
