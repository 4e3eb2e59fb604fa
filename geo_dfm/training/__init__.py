"""The project's contrastive trainer (InfoNCE), reused by fine-tuning (full, one tower, LoRA/adapters)."""

from geo_dfm.training.config import LoopOptions, StepRecord, TrainConfig, TrainResult
from geo_dfm.training.data import ImageTextPair, PairDataset, PairStream, UnreadableImage, as_pairs
from geo_dfm.training.images import EvalPreprocess, dihedral_augment
from geo_dfm.training.loss import contrastive_loss
from geo_dfm.training.trainer import train_contrastive

__all__ = [
    "EvalPreprocess",
    "ImageTextPair",
    "LoopOptions",
    "PairDataset",
    "PairStream",
    "StepRecord",
    "TrainConfig",
    "TrainResult",
    "UnreadableImage",
    "as_pairs",
    "contrastive_loss",
    "dihedral_augment",
    "train_contrastive",
]
