"""Settings and outcome of a contrastive training run.

:class:`TrainConfig` holds what decides the weights of the toy model (its fields are hashed into the
toy model's cache key: adding or changing a default there retrains it). Everything added for
fine-tuning (accumulation, precision, checkpoints, validation) lives in :class:`LoopOptions`, whose
defaults leave a run exactly as :class:`TrainConfig` alone describes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


Validator = Callable[[Any], dict[str, float]]
"""``validate(model) -> {metric: value}``; called with the model in eval mode, under no gradient."""


@dataclass(frozen=True)
class LoopOptions:
    """What a fine-tuning run adds to :class:`TrainConfig` (the defaults change nothing).

    - ``accumulate``: micro-batches of ``batch_size`` per optimizer step. Their features are cached
      first, so the contrastive loss sees all ``accumulate × batch_size`` pairs (the gradient equals
      one big batch's, with ``accumulate`` times less activation memory).
    - ``precision``: ``auto``/``fp32``/``bf16``/``fp16`` autocast (GPU only; see
      :func:`geo_dfm.models.device.resolve_precision`); ``None`` = ``auto`` if ``config.amp`` else ``fp32``.
    - ``checkpoint_dir``/``checkpoint_every``: write the full training state every N steps (the last
      ``keep_checkpoints`` are kept); ``resume``: continue from the latest one there.
    - ``fingerprint``: identifies the run; resuming from another run's checkpoint is refused.
    - ``validate``: called at the end of every epoch (or every ``validate_every`` steps) and at the end.
    - ``log_every``: steps between progress notes (loss, images/s).
    - ``workers``: threads that read and decode images of file-backed pairs.
    """

    accumulate: int = 1
    precision: str | None = None
    checkpoint_dir: Path | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    resume: bool = False
    fingerprint: str = ""
    validate: Validator | None = None
    validate_every: int | None = None
    log_every: int = 10
    workers: int = 2


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step: loss, learning rate, temperature (``logit_scale``, exp'd) and speed."""

    step: int
    epoch: int
    loss: float
    lr: float
    logit_scale: float
    images_per_second: float

    def as_dict(self) -> dict[str, float]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "loss": self.loss,
            "lr": self.lr,
            "logit_scale": self.logit_scale,
            "images_per_second": self.images_per_second,
        }


@dataclass(frozen=True)
class TrainResult:
    """What a run did: per-step losses, time, device and how many parameters it trained.

    ``history`` has one :class:`StepRecord` per step, ``validations`` one ``{"step", "epoch", metric…}``
    dict per validation, ``skipped`` the images that could not be read (``"path: problem"``),
    ``resumed_from`` the step of the checkpoint the run continued from.
    """

    steps: int
    losses: tuple[float, ...]
    seconds: float
    device: str
    trainable_parameters: int
    frozen_parameters: int
    pairs: int
    history: tuple[StepRecord, ...] = ()
    validations: tuple[dict[str, float], ...] = ()
    skipped: tuple[str, ...] = ()
    resumed_from: int | None = None
    precision: str = "fp32"
    images_seen: int = 0

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
