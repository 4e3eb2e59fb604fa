"""The project's contrastive trainer (InfoNCE), reused by fine-tuning (full, one tower, LoRA/adapters).

Names are imported on first use, so reading the fine-tuning job's parameters (method names, settings:
:mod:`geo_dfm.training.method_options`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "LoopOptions": "config",
    "StepRecord": "config",
    "TrainConfig": "config",
    "TrainResult": "config",
    "ImageTextPair": "data",
    "PairDataset": "data",
    "PairStream": "data",
    "UnreadableImage": "data",
    "as_pairs": "data",
    "EvalPreprocess": "images",
    "dihedral_augment": "images",
    "contrastive_loss": "loss",
    "train_contrastive": "trainer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
