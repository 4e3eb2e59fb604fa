"""The project's one contrastive trainer (CLIP / InfoNCE, AdamW, cosine schedule).

It trains only parameters with ``requires_grad``, so the same function fine-tunes a whole model,
one tower (freeze the other), or LoRA/adapter weights injected with peft.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geo_dfm.progress import Progress
from geo_dfm.training.config import TrainConfig, TrainResult
from geo_dfm.training.images import EvalPreprocess, dihedral_augment
from geo_dfm.training.loss import contrastive_loss
from tile_tools.errors import InputError


@dataclass(frozen=True, eq=False)
class ImageTextPair:
    """One training example: an H×W×3 uint8 image and its caption.

    Pairs sharing a ``group`` (e.g. a class id) are treated as positives of each other.
    """

    image: np.ndarray
    caption: str
    group: int | None = None


def as_pairs(items: Sequence) -> list[ImageTextPair]:
    """Accept :class:`ImageTextPair` objects or ``(image, caption[, group])`` tuples."""
    pairs = [item if isinstance(item, ImageTextPair) else ImageTextPair(*item) for item in items]
    if not pairs:
        raise InputError("pairs", "no image-text pairs to train on")
    for index, pair in enumerate(pairs):
        image = np.asarray(pair.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(
                "pairs", f"pair {index}: image must be H×W×3 uint8, got {image.shape} {image.dtype}"
            )
        if not pair.caption.strip():
            raise InputError("pairs", f"pair {index}: empty caption")
    return pairs


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> tuple[list[dict], int, int]:
    decay, no_decay, frozen = [], [], 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            frozen += param.numel()
            continue
        exempt = param.ndim < 2 or "bias" in name or "ln" in name or "logit_scale" in name
        (no_decay if exempt else decay).append(param)
    trainable = sum(p.numel() for p in decay + no_decay)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]], trainable, frozen


def _schedule(config: TrainConfig, steps: int) -> Callable[[int], float]:
    warmup = min(config.warmup_steps, max(0, steps - 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def train_contrastive(
    model: torch.nn.Module,
    tokenizer: Callable[[Sequence[str]], torch.Tensor],
    pairs: Sequence,
    config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
    preprocess: EvalPreprocess | None = None,
) -> TrainResult:
    """Train an open_clip-style model (``encode_image``, ``encode_text``, ``logit_scale``) in place.

    Images go through the model's own eval preprocessing (``preprocess``, default: the one open_clip
    builds for the model), plus random flips/rotations when ``config.augment``. Only parameters with
    ``requires_grad`` are updated. The model is left in eval mode.
    """
    progress = progress or Progress()
    items = as_pairs(pairs)
    device = _device(config.device)
    preprocess = preprocess or EvalPreprocess.for_model(model)
    steps = (
        config.steps
        if config.steps is not None
        else math.ceil(config.epochs * len(items) / config.batch_size)
    )
    if steps < 1 or config.batch_size < 2:
        raise InputError("config", "need at least one step and a batch size of 2 or more")

    progress.stage("prepare images", total=len(items))
    images = preprocess.to_uint8([p.image for p in items])
    progress.advance(len(items))
    captions = sorted({p.caption for p in items})
    lookup = {c: i for i, c in enumerate(captions)}
    caption_index = torch.tensor([lookup[p.caption] for p in items])
    tokens = tokenizer(captions)
    has_groups = all(p.group is not None for p in items)
    groups = torch.tensor([p.group for p in items]) if has_groups else None

    model.to(device)
    model.train()
    param_groups, trainable, frozen = _param_groups(model, config.weight_decay)
    if trainable == 0:
        raise InputError("model", "no parameter requires a gradient: nothing to train")
    optimizer = torch.optim.AdamW(param_groups, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, steps))
    params = [p for g in param_groups for p in g["params"]]
    use_amp = config.amp and device.type == "cuda"
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    batch_size = min(config.batch_size, len(items))

    progress.stage("train", total=steps)
    losses: list[float] = []
    order = torch.randperm(len(items), generator=generator)
    cursor = 0
    started = time.perf_counter()
    for _ in range(steps):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(items), generator=generator), 0
        index = order[cursor : cursor + batch_size]
        cursor += batch_size
        batch = images[index]
        if config.augment:
            batch = dihedral_augment(batch, generator)
        pixels = preprocess.normalise(batch.to(device))
        text = tokens[caption_index[index]].to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            image_features = model.encode_image(pixels, normalize=True)
            text_features = model.encode_text(text, normalize=True)
            loss = contrastive_loss(
                image_features.float(),
                text_features.float(),
                model.logit_scale.exp(),
                None if groups is None else groups[index].to(device),
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(config.max_logit_scale))
        losses.append(float(loss.detach()))
        progress.advance()
    model.eval()
    return TrainResult(
        steps=steps,
        losses=tuple(losses),
        seconds=time.perf_counter() - started,
        device=str(device),
        trainable_parameters=trainable,
        frozen_parameters=frozen,
        pairs=len(items),
    )
