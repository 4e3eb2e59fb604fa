"""The model a fine-tuning run starts from: a fresh, trainable copy of a base checkpoint.

Built with the factory's own planning and strict loading (:func:`geo_dfm.models.factory.plan_load`,
:func:`~geo_dfm.models.factory.instantiate`), never from the encoder cache: training changes the
weights in place, and a cached encoder is shared by every job of the process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from geo_dfm.models.registry import ModelSpec
from geo_dfm.training.images import EvalPreprocess


@dataclass(frozen=True, eq=False)
class BaseModel:
    """A trainable open_clip model with its tokenizer, registry spec, weights file and preprocessing
    (the same as inference: :class:`~geo_dfm.models.encoder.Encoder`'s size, mean and std)."""

    model: nn.Module
    tokenizer: Any
    spec: ModelSpec
    weights: Path
    preprocess: EvalPreprocess

    def describe(self) -> dict[str, object]:
        """The base model as a model card records it."""
        return {
            "name": self.spec.name,
            "architecture": self.spec.architecture,
            "weights": str(self.weights),
            "input_size": self.preprocess.size,
            "mean": list(self.preprocess.mean),
            "std": list(self.preprocess.std),
        }


def load_base_model(
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    model_config: str | os.PathLike[str] | None = None,
    quick_gelu: bool | None = None,
) -> BaseModel:
    """The model that ``load_encoder(model, weights, model_config)`` would load, as a fresh trainable copy."""
    import open_clip

    from geo_dfm.models import checkpoints
    from geo_dfm.models.factory import instantiate, plan_load

    plan = plan_load(model, weights, model_config, quick_gelu)
    network = instantiate(
        plan.spec.architecture, checkpoints.read_checkpoint(plan.weights), plan.weights, plan.quick_gelu
    )
    for parameter in network.parameters():
        parameter.requires_grad_(True)
    size = network.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    preprocess = EvalPreprocess(size, tuple(plan.spec.mean), tuple(plan.spec.std))  # type: ignore[arg-type]
    tokenizer = open_clip.get_tokenizer(plan.spec.architecture)
    return BaseModel(network.train(), tokenizer, plan.spec, Path(plan.weights), preprocess)
