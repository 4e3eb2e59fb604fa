"""The project's one contrastive trainer (CLIP / InfoNCE, AdamW, cosine schedule with warmup).

It trains only parameters with ``requires_grad``, so the same function fine-tunes a whole model,
one tower (freeze the other), or adapter weights injected with peft (:mod:`geo_dfm.training.methods`).
The toy model is trained with it too: with default :class:`LoopOptions` a run is exactly what it was
before fine-tuning existed (same random draws, same arithmetic).

One step: ``accumulate`` micro-batches (features cached first when more than one, so the loss sees
every pair of the step), optional dihedral augmentation, autocast (GPU only), backward, gradient
clipping, AdamW, the schedule, and the temperature clamped to ``[1, max_logit_scale]``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence

import torch

from geo_dfm.models.device import resolve_device, resolve_precision
from geo_dfm.progress import Progress
from geo_dfm.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from geo_dfm.training.config import LoopOptions, StepRecord, TrainConfig, TrainResult
from geo_dfm.training.data import Batch, ImageTextPair, PairDataset, PairStream, as_pairs, make_batches
from geo_dfm.training.images import EvalPreprocess, dihedral_augment
from geo_dfm.training.loss import contrastive_loss
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["ImageTextPair", "as_pairs", "train_contrastive"]


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


def planned_steps(config: TrainConfig, pairs: int, accumulate: int = 1) -> int:
    """``config.steps``, else ``ceil(epochs × pairs / (batch_size × accumulate))``."""
    if config.steps is not None:
        return config.steps
    return math.ceil(config.epochs * pairs / (config.batch_size * accumulate))


def train_contrastive(
    model: torch.nn.Module,
    tokenizer: Callable[[Sequence[str]], torch.Tensor],
    pairs: Sequence | PairDataset | PairStream,
    config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
    preprocess: EvalPreprocess | None = None,
    loop: LoopOptions = LoopOptions(),
) -> TrainResult:
    """Train an open_clip-style model (``encode_image``, ``encode_text``, ``logit_scale``) in place.

    ``pairs``: a sequence of :class:`ImageTextPair` (or ``(image, caption[, group])`` tuples), a
    :class:`PairDataset` or a :class:`PairStream`. Images go through the model's eval preprocessing
    (``preprocess``, default: the one open_clip records for the model), plus random flips/rotations
    when ``config.augment``. Only parameters with ``requires_grad`` are updated. The model is left in
    eval mode.
    """
    progress = progress or Progress()
    if not isinstance(pairs, (PairDataset, PairStream)):
        pairs = as_pairs(pairs)
    device = resolve_device(config.device)
    precision = loop.precision or ("auto" if config.amp else "fp32")
    autocast_dtype = resolve_precision(precision, device)
    preprocess = preprocess or EvalPreprocess.for_model(model)
    if loop.accumulate < 1:
        raise InputError("accumulate", f"needs at least 1 micro-batch per step, got {loop.accumulate}")
    steps = planned_steps(config, len(pairs), loop.accumulate)
    if steps < 1 or config.batch_size < 2:
        raise InputError("config", "need at least one step and a batch size of 2 or more")

    progress.stage("prepare images", total=len(pairs))
    generator = torch.Generator().manual_seed(config.seed)
    batches = make_batches(
        pairs, preprocess, tokenizer, config.batch_size, config.seed, generator, loop.workers
    )
    progress.advance(len(pairs))
    try:
        return _run(
            model, batches, preprocess, config, loop, progress, device, autocast_dtype, steps, generator
        )
    finally:
        batches.close()


def _run(model, batches, preprocess, config, loop, progress, device, autocast_dtype, steps, generator):
    model.to(device)
    model.train()
    param_groups, trainable, frozen = _param_groups(model, config.weight_decay)
    if trainable == 0:
        raise InputError("model", "no parameter requires a gradient: nothing to train")
    optimizer = torch.optim.AdamW(param_groups, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, steps))
    params = [p for g in param_groups for p in g["params"]]
    scaler = torch.amp.GradScaler(device.type) if autocast_dtype == torch.float16 else None
    torch.manual_seed(config.seed)
    per_step = batches.batch_size * loop.accumulate
    steps_per_epoch = max(1, batches.pairs // per_step)
    validate_every = loop.validate_every or steps_per_epoch

    losses: list[float] = []
    history: list[StepRecord] = []
    validations: list[dict[str, float]] = []
    start_step, resumed_from = 0, None
    if loop.resume and loop.checkpoint_dir is not None:
        found = latest_checkpoint(loop.checkpoint_dir)
        if found is None:
            log.info("no checkpoint in %s yet: starting from step 0", loop.checkpoint_dir)
        else:
            state = load_checkpoint(found, loop.fingerprint)
            _restore(state, model, optimizer, scheduler, scaler, generator, batches)
            history = [StepRecord(**row) for row in state["history"]]
            losses = [row.loss for row in history]
            validations = [dict(row) for row in state["validations"]]
            batches.skipped.update(state["skipped"])
            start_step = resumed_from = int(state["step"])
            log.info("resuming from %s (step %d of %d)", found, start_step, steps)

    progress.stage("train", total=steps)
    if start_step:
        progress.advance(start_step)
    started = time.perf_counter()
    images_seen = 0
    for step in range(start_step, steps):
        step_started = time.perf_counter()
        micro = [_augmented(batches.next(), config.augment, generator) for _ in range(loop.accumulate)]
        lr = optimizer.param_groups[0]["lr"]
        autocast = _autocast(device, autocast_dtype)
        if len(micro) == 1:
            pixels, text, groups = _on_device(micro[0], preprocess, device)
            with autocast:
                image_features = model.encode_image(pixels, normalize=True)
                text_features = model.encode_text(text, normalize=True)
                loss = contrastive_loss(
                    image_features.float(), text_features.float(), model.logit_scale.exp(), groups
                )
            optimizer.zero_grad(set_to_none=True)
            _backward(loss, scaler)
        else:
            optimizer.zero_grad(set_to_none=True)
            loss = _accumulated_backward(model, micro, preprocess, device, autocast_dtype, scaler)
        if scaler is not None:
            scaler.unscale_(optimizer)
        if config.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(config.max_logit_scale))
        value = float(loss.detach())
        losses.append(value)
        seen = sum(len(batch) for batch in micro)
        images_seen += seen
        record = StepRecord(
            step=step + 1,
            epoch=step // steps_per_epoch,
            loss=value,
            lr=float(lr),
            logit_scale=float(model.logit_scale.detach().exp()),
            images_per_second=seen / max(time.perf_counter() - step_started, 1e-9),
        )
        history.append(record)
        if loop.validate is not None and ((step + 1) % validate_every == 0 or step + 1 == steps):
            validations.append(_validate(model, loop, record))
        if (
            loop.checkpoint_dir is not None
            and loop.checkpoint_every
            and (step + 1) % loop.checkpoint_every == 0
        ):
            state = _state(model, optimizer, scheduler, scaler, generator, batches, history, validations)
            save_checkpoint(
                loop.checkpoint_dir,
                step + 1,
                {"fingerprint": loop.fingerprint, **state},
                loop.keep_checkpoints,
            )
        if (step + 1) % max(1, loop.log_every) == 0 or step + 1 == steps:
            _note(progress, record, steps)
        progress.advance()
    model.eval()
    return TrainResult(
        steps=steps,
        losses=tuple(losses),
        seconds=time.perf_counter() - started,
        device=str(device),
        trainable_parameters=trainable,
        frozen_parameters=frozen,
        pairs=batches.pairs,
        history=tuple(history),
        validations=tuple(validations),
        skipped=tuple(f"{path}: {problem}" for path, problem in sorted(batches.skipped.items())),
        resumed_from=resumed_from,
        precision={None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype],
        images_seen=images_seen,
    )


def _augmented(batch: Batch, augment: bool, generator: torch.Generator) -> Batch:
    if not augment:
        return batch
    return Batch(dihedral_augment(batch.images, generator), batch.tokens, batch.groups)


def _on_device(batch: Batch, preprocess: EvalPreprocess, device: torch.device):
    pixels = preprocess.normalise(batch.images.to(device))
    text = batch.tokens.to(device)
    groups = None if batch.groups is None else batch.groups.to(device)
    return pixels, text, groups


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


def _backward(loss: torch.Tensor, scaler) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


def _accumulated_backward(
    model, micro: list[Batch], preprocess, device, autocast_dtype, scaler
) -> torch.Tensor:
    """Backward of the loss over all micro-batches together, one micro-batch's graph at a time.

    Pass 1 computes every micro-batch's features without a graph; pass 2 recomputes one micro-batch's
    features with a graph and back-propagates the full loss through them (the others held constant).
    The gradients add up to the full batch's; the temperature's is taken once (from the first pass).
    """
    inputs = [_on_device(batch, preprocess, device) for batch in micro]
    with torch.no_grad(), _autocast(device, autocast_dtype):
        cached = [
            (model.encode_image(p, normalize=True).float(), model.encode_text(t, normalize=True).float())
            for p, t, _ in inputs
        ]
    has_groups = all(g is not None for _, _, g in inputs)
    groups = torch.cat([g for _, _, g in inputs]) if has_groups else None
    first = None
    for index, (pixels, text, _) in enumerate(inputs):
        with _autocast(device, autocast_dtype):
            image_features = model.encode_image(pixels, normalize=True).float()
            text_features = model.encode_text(text, normalize=True).float()
            images = torch.cat([image_features if i == index else c[0] for i, c in enumerate(cached)])
            texts = torch.cat([text_features if i == index else c[1] for i, c in enumerate(cached)])
            scale = model.logit_scale.exp()
            loss = contrastive_loss(images, texts, scale if index == 0 else scale.detach(), groups)
        _backward(loss, scaler)
        first = loss if first is None else first
    return first


def _validate(model, loop: LoopOptions, record: StepRecord) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            metrics = loop.validate(model)
    finally:
        model.train(was_training)
    row = {"step": record.step, "epoch": record.epoch, **{k: float(v) for k, v in metrics.items()}}
    log.info("validation at step %d: %s", record.step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return row


def _note(progress: Progress, record: StepRecord, steps: int) -> None:
    note = getattr(progress, "note", None)
    if callable(note):  # a reporter that shows per-step figures
        note(loss=record.loss, images_per_second=record.images_per_second)
    log.info(
        "step %d/%d loss %.4f lr %.2e %.1f images/s",
        record.step,
        steps,
        record.loss,
        record.lr,
        record.images_per_second,
    )


def _state(model, optimizer, scheduler, scaler, generator, batches, history, validations) -> dict:
    state = {
        "trainable": {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "batches": batches.state_dict(),
        "history": [row.as_dict() for row in history],
        "validations": [dict(row) for row in validations],
        "skipped": dict(batches.skipped),
    }
    return state


def _restore(state, model, optimizer, scheduler, scaler, generator, batches) -> None:
    named = dict(model.named_parameters())
    saved = state["trainable"]
    wanted = {n for n, p in named.items() if p.requires_grad}
    if set(saved) != wanted:
        raise InputError("resume", "the checkpoint's trainable parameters do not match this model and method")
    with torch.no_grad():
        for name, tensor in saved.items():
            named[name].copy_(tensor)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    batches.load_state_dict(state["batches"])
