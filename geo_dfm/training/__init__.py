"""The project's contrastive trainer (InfoNCE), reused by fine-tuning (full, one tower, LoRA/adapters)."""

from geo_dfm.training.config import TrainConfig, TrainResult
from geo_dfm.training.images import EvalPreprocess, dihedral_augment
from geo_dfm.training.loss import contrastive_loss
from geo_dfm.training.trainer import ImageTextPair, as_pairs, train_contrastive

__all__ = [
    "EvalPreprocess",
    "ImageTextPair",
    "TrainConfig",
    "TrainResult",
    "as_pairs",
    "contrastive_loss",
    "dihedral_augment",
    "train_contrastive",
]
