"""Settings and outcome of a contrastive training run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    ``steps`` wins over ``epochs`` when given. The learning rate warms up linearly for
    ``warmup_steps`` and then follows a cosine down to ``lr * min_lr_ratio``. ``amp`` uses bfloat16
    autocast on CUDA only (ignored on the CPU). ``augment`` applies random flips and 90° rotations.
    """

    epochs: float = 1.0
    steps: int | None = None
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_steps: int = 10
    min_lr_ratio: float = 0.0
    grad_clip_norm: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    augment: bool = True
    max_logit_scale: float = 100.0


@dataclass(frozen=True)
class TrainResult:
    """What a run did: per-step losses, time, device and how many parameters it trained."""

    steps: int
    losses: tuple[float, ...]
    seconds: float
    device: str
    trainable_parameters: int
    frozen_parameters: int
    pairs: int

    @property
    def first_loss(self) -> float:
        """Mean loss of the first steps (up to 5)."""
        head = self.losses[:5]
        return sum(head) / len(head)

    @property
    def final_loss(self) -> float:
        """Mean loss of the last steps (up to 5)."""
        tail = self.losses[-5:]
        return sum(tail) / len(tail)
