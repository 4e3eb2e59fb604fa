"""Shared set-up of the job benchmarks (not a benchmark: ``run_all`` skips ``_*.py``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def random_vit_b32(folder: Path) -> Path:
    """A ViT-B-32-quickgelu checkpoint with random weights (what GeoRSCLIP-B/32 looks like)."""
    import torch
    from safetensors.torch import save_file

    from geo_dfm.models.factory import build_model

    path = folder / "vit-b-32-random.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        model = build_model("ViT-B-32-quickgelu")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def best_of(n: int, fn: Callable[[], object]) -> float:
    return min(timed(fn)[0] for _ in range(n))
