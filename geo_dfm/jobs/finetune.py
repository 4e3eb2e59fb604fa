"""``finetune``: adapt a CLIP model to remote sensing (or to a region) on image–text pairs.

One run: read the pairs (:func:`geo_dfm.pairs.open_pairs`), build a fresh trainable copy of the base
model, make it trainable by the method (:mod:`geo_dfm.training.methods`), train it with the project's
one trainer (:func:`geo_dfm.training.train_contrastive`), write the result. Output folder::

    adapter_config.json, adapter_model.safetensors,   the peft adapter (lora, ia3, loha, oft):
    geo_dfm_adapter.json, geo_dfm_extra.safetensors     ``--adapter OUT`` in every command
    model.safetensors                                   full weights (full, frozen-*), or the merged
                                                        adapter with ``merge``: ``--weights OUT/model.safetensors``
    model_card.json                                     base model, method, data, steps, metrics, parameters
    train_log.csv, train_plot.png, summary.json

Checkpoints (every ``checkpoint_every`` steps) go to ``checkpoint_dir`` (default ``<OUT>.checkpoints``,
beside the output, so they survive a failed or cancelled run); ``resume`` continues from the latest.
They are removed after a successful run unless ``keep_checkpoints``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from geo_dfm.jobs.params import ModelParams, param
from geo_dfm.jobs.pipeline import output_target, start_job
from geo_dfm.progress import Progress
from geo_dfm.training.method_options import ADAPTER_METHODS, METHODS, TOWERS
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

#: Learning rate per method when none is given (adapters learn fast; whole towers need small steps).
DEFAULT_LR = {
    "lora": 5e-4,
    "loha": 5e-4,
    "oft": 5e-4,
    "ia3": 3e-3,
    "full": 1e-5,
    "frozen-text": 1e-5,
    "frozen-image": 1e-5,
}
CHECKPOINT_SUFFIX = ".checkpoints"


@dataclass(frozen=True)
class FinetuneParams:
    """Everything ``finetune`` needs (``model.batch_size`` is the training batch size)."""

    pairs: str = param(help="Training pairs: a CSV/Parquet table, an ImageFolder or tar shards.")
    output: str = param(help="Output folder: the adapter (or weights), model card, log, plot, summary.")
    method: str = param("lora", help="What trains.", choices=METHODS)
    overwrite: bool = param(False, help="Replace an existing output folder written by geo-dfm.")
    images_dir: str | None = param(None, help="Root of relative image paths in a table.")
    image_column: str | None = param(None, help="The table's image path column.")
    caption_column: str | None = param(None, help="The table's caption column.")
    encoding: str | None = param(None, help="The table's text encoding (default UTF-8, else GB18030).")
    pair_templates: str = param("rs105", help="Caption templates of an ImageFolder's classes.")
    gsd: float | None = param(None, help="Ground sampling distance (m/px) written in ImageFolder captions.")
    rank: int = param(8, help="Adapter rank (LoRA, LoHa).")
    alpha: float | None = param(None, help="Adapter scaling numerator (LoRA, LoHa; default 2 × rank).")
    dropout: float = param(0.0, help="Adapter dropout (LoRA, LoHa).")
    towers: str = param("both", help="Towers that get adapters.", choices=TOWERS)
    oft_block_size: int = param(16, help="OFT block size (divides every adapted layer's width).")
    steps: int | None = param(None, help="Optimizer steps (wins over epochs).")
    epochs: float = param(1.0, help="Passes over the pairs (when steps is not given).")
    lr: float | None = param(None, help="Peak learning rate (default per method).")
    weight_decay: float = param(0.1, help="AdamW weight decay.")
    warmup_steps: int = param(10, help="Linear warm-up steps before the cosine decay.")
    min_lr_ratio: float = param(0.0, help="Final learning rate as a share of the peak.")
    accumulate: int = param(1, help="Micro-batches per optimizer step (one big contrastive batch).")
    grad_clip: float | None = param(1.0, help="Gradient norm clipping (0 or None: off).")
    seed: int = param(0, help="Seed of the adapter initialisation, data order and augmentation.")
    augment: bool = param(True, help="Random flips and 90° rotations.")
    checkpoint_every: int | None = param(None, help="Write a checkpoint every N steps.")
    checkpoint_dir: str | None = param(None, help="Checkpoint folder (default: <output>.checkpoints).")
    resume: bool = param(False, help="Continue from the latest checkpoint in the checkpoint folder.")
    keep_checkpoints: bool = param(False, help="Keep the checkpoints after a successful run.")
    val_dir: str | None = param(None, help="Validation ImageFolder (zero-shot top-1 each epoch).")
    val_classnames: tuple[str, ...] = param((), help="Class names for the validation folders (sorted order).")
    val_templates: str = param("rs105", help="Prompt templates of the zero-shot validation.")
    val_csv: str | None = param(None, help="Validation retrieval table (filename,title).")
    val_images: str | None = param(None, help="Images folder of the validation retrieval table.")
    validate_every: int | None = param(None, help="Validate every N steps (default: each epoch).")
    merge: bool = param(False, help="Also write the adapter merged into full weights (model.safetensors).")
    workers: int = param(2, help="Threads reading and decoding images.")
    model: ModelParams = field(default_factory=ModelParams)

    def inputs(self) -> tuple[str, ...]:
        files = (self.pairs, self.images_dir, self.val_dir, self.val_csv, self.val_images)
        return (*(f for f in files if f), *self.model.input_files())


def check_finetune_params(params: FinetuneParams) -> FinetuneParams:
    """Checks that need no file or model (InputErrors name the parameter)."""
    from geo_dfm.training.method_options import MethodOptions, check_method, check_options

    method = check_method(params.method)
    check_options(
        MethodOptions(params.rank, params.alpha, params.dropout, params.towers, params.oft_block_size)
    )
    if params.model.adapter:
        raise InputError(
            "adapter", "fine-tuning starts from base weights; continue an interrupted run with resume"
        )
    for name in ("steps", "checkpoint_every", "validate_every"):
        value = getattr(params, name)
        if value is not None and value < 1:
            raise InputError(name, f"must be at least 1, got {value}")
    if params.steps is None and not params.epochs > 0:
        raise InputError("epochs", f"must be positive, got {params.epochs}")
    if params.lr is not None and not params.lr > 0:
        raise InputError("lr", f"the learning rate must be positive, got {params.lr}")
    if params.accumulate < 1:
        raise InputError("accumulate", f"needs at least 1 micro-batch per step, got {params.accumulate}")
    if params.model.batch_size < 2:
        raise InputError("batch_size", "contrastive training needs a batch of 2 or more pairs")
    if params.warmup_steps < 0 or params.weight_decay < 0:
        raise InputError("warmup_steps", "warm-up steps and weight decay must not be negative")
    if params.merge and method not in ADAPTER_METHODS:
        log.info("merge: method %s writes full weights anyway", method)
    return replace(params, method=method)


def checkpoint_folder(params: FinetuneParams) -> Path:
    """Where the run's checkpoints go."""
    if params.checkpoint_dir:
        return Path(params.checkpoint_dir).expanduser().absolute()
    target = output_target(params.output, overwrite=True)
    return target.with_name(target.name + CHECKPOINT_SUFFIX)


def _check_checkpoints(folder: Path, params: FinetuneParams) -> None:
    from geo_dfm.training.checkpoint import list_checkpoints

    if list_checkpoints(folder) and not params.resume:
        raise InputError(
            "resume",
            f"{folder} holds checkpoints of an earlier run: continue it with resume "
            "(--resume), or remove that folder to start afresh",
        )


def _file_stamp(path: str | os.PathLike[str]) -> list[object]:
    target = Path(path)
    if target.is_file():
        stat = target.stat()
        return [str(target.absolute()), stat.st_size, stat.st_mtime_ns]
    return [str(path)]


def fingerprint(params: FinetuneParams, weights: Path, pairs: int) -> str:
    """What makes two runs the same run (a checkpoint is only resumed by the same run)."""
    identity = {
        key: value
        for key, value in asdict(params).items()
        if key
        not in (
            "output",
            "overwrite",
            "resume",
            "keep_checkpoints",
            "checkpoint_dir",
            "checkpoint_every",
            "merge",
            "workers",
            "validate_every",
            "val_dir",
            "val_csv",
            "val_images",
            "val_classnames",
            "val_templates",
        )
    }
    identity["model"] = {k: v for k, v in identity["model"].items() if k not in ("threads",)}
    identity["weights"] = _file_stamp(weights)
    identity["pairs_file"] = _file_stamp(params.pairs)
    identity["pairs_count"] = pairs
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]


def run_finetune(params: FinetuneParams, progress: Progress) -> dict[str, Any]:
    """Fine-tune and return the summary (also written to ``OUT/summary.json``)."""
    from geo_dfm.pairs.sources import PairsFormat, open_pairs
    from geo_dfm.training import LoopOptions, TrainConfig, train_contrastive
    from geo_dfm.training.base import load_base_model
    from geo_dfm.training.method_options import MethodOptions
    from geo_dfm.training.methods import prepare_model
    from geo_dfm.training.validation import ValidationData, make_validator

    params = check_finetune_params(params)
    validation = ValidationData(
        params.val_dir, tuple(params.val_classnames), params.val_templates, params.val_csv, params.val_images
    ).check()
    checkpoints = checkpoint_folder(params)
    _check_checkpoints(checkpoints, params)
    options = MethodOptions(params.rank, params.alpha, params.dropout, params.towers, params.oft_block_size)
    fmt = PairsFormat(
        params.images_dir,
        params.image_column,
        params.caption_column,
        params.encoding,
        params.pair_templates,
        params.gsd,
        params.seed,
    )
    with start_job("finetune", params.output, params.overwrite, progress, params.inputs()) as job:
        with job.stage("read pairs"):
            pairs = open_pairs(params.pairs, fmt, progress)
        with job.stage("load model"):
            base = load_base_model(params.model.name, params.model.weights, params.model.model_config)
            prepared = prepare_model(base.model, params.method, options, params.seed)
        if params.model.threads:
            from geo_dfm.models.device import set_cpu_threads

            set_cpu_threads(params.model.threads)
        lr = params.lr if params.lr is not None else DEFAULT_LR[params.method]
        config = TrainConfig(
            epochs=params.epochs,
            steps=params.steps,
            batch_size=params.model.batch_size,
            lr=lr,
            weight_decay=params.weight_decay,
            warmup_steps=params.warmup_steps,
            min_lr_ratio=params.min_lr_ratio,
            grad_clip_norm=params.grad_clip or None,
            seed=params.seed,
            device=params.model.device,
            augment=params.augment,
        )
        loop = LoopOptions(
            accumulate=params.accumulate,
            precision=params.model.precision,
            checkpoint_dir=checkpoints if params.checkpoint_every or params.resume else None,
            checkpoint_every=params.checkpoint_every,
            resume=params.resume,
            fingerprint=fingerprint(params, base.weights, len(pairs)),
            validate=make_validator(validation, base, params.model.device, params.model.precision),
            validate_every=params.validate_every,
            workers=params.workers,
        )
        with job.timer.stage("train"):
            result = train_contrastive(
                prepared.model, base.tokenizer, pairs, config, progress, base.preprocess, loop
            )
        with job.stage("write outputs"):
            outputs = _write_outputs(job, prepared, base, params)
            card = _model_card(params, prepared, base, pairs, config, loop, result, outputs)
            (job.path("model_card.json")).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
            from geo_dfm.training.report import write_log_csv, write_plot_png

            write_log_csv(result, job.path("train_log.csv"))
            write_plot_png(result, job.path("train_plot.png"))
        summary = job.finish(
            model=base.describe(),
            parameters={k: v for k, v in asdict(params).items() if k not in ("output", "overwrite")},
            crs=None,
            outputs={
                **{name: job.final(path) for name, path in outputs.items()},
                "model_card": job.final("model_card.json"),
                "log": job.final("train_log.csv"),
                "plot": job.final("train_plot.png"),
                "checkpoints": str(checkpoints)
                if params.keep_checkpoints and params.checkpoint_every
                else None,
            },
            method=params.method,
            trainable_parameters=prepared.trainable_parameters,
            base_parameters=prepared.base_parameters,
            steps=result.steps,
            resumed_from=result.resumed_from,
            pairs=pairs.describe(),
            skipped_images=list(result.skipped) + [f"{p}: {why}" for p, why in sorted(pairs.skipped.items())],
            first_loss=result.first_loss,
            final_loss=result.final_loss,
            validations=list(result.validations),
            device=result.device,
            precision=result.precision,
            train_seconds=round(result.seconds, 3),
            images_per_second=round(result.images_seen / max(result.seconds, 1e-9), 2),
        )
    if not params.keep_checkpoints:
        _remove_checkpoints(checkpoints)
    return summary


def _write_outputs(job, prepared, base, params: FinetuneParams) -> dict[str, str]:
    from geo_dfm.training.adapter_files import save_adapter, save_full_weights

    metadata = {"base_model": base.spec.name, "architecture": base.spec.architecture, "method": params.method}
    outputs: dict[str, str] = {}
    if prepared.is_adapter:
        save_adapter(prepared, job.folder)
        outputs["adapter"] = ""
        if params.merge:
            save_full_weights(prepared.model, job.path("model.safetensors"), {**metadata, "merged": "true"})
            outputs["weights"] = "model.safetensors"
    else:
        save_full_weights(prepared.model, job.path("model.safetensors"), metadata)
        outputs["weights"] = "model.safetensors"
    return outputs


def _model_card(params, prepared, base, pairs, config, loop, result, outputs) -> dict[str, Any]:
    from geo_dfm import __version__

    usage = (
        f"--model {base.spec.name} --adapter <this folder>"
        if prepared.is_adapter
        else f"--model {base.spec.name} --weights <this folder>/model.safetensors"
    )
    return {
        "format": "geo-dfm model card 1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "geo_dfm_version": __version__,
        "base_model": base.describe(),
        "method": params.method,
        "method_options": {
            "rank": params.rank,
            "alpha": params.alpha if params.alpha is not None else 2 * params.rank,
            "dropout": params.dropout,
            "towers": params.towers,
            "oft_block_size": params.oft_block_size,
            "target_modules": prepared.target_modules,
        },
        "trainable_parameters": prepared.trainable_parameters,
        "base_parameters": prepared.base_parameters,
        "data": {**pairs.describe(), "skipped": list(result.skipped) + sorted(pairs.skipped)},
        "training": {
            **asdict(config),
            "accumulate": loop.accumulate,
            "precision": result.precision,
            "device": result.device,
            "steps_done": result.steps,
            "resumed_from": result.resumed_from,
            "images_seen": result.images_seen,
            "seconds": round(result.seconds, 3),
        },
        "metrics": {
            "first_loss": result.first_loss,
            "final_loss": result.final_loss,
            "validation": result.validations[-1] if result.validations else None,
            "validations": list(result.validations),
        },
        "files": outputs,
        "usage": usage,
    }


def _remove_checkpoints(folder: Path) -> None:
    """Remove the checkpoint files this job writes (``step-*.pt``) and the folder if nothing else is in it."""
    from geo_dfm.training.checkpoint import list_checkpoints

    for _, path in list_checkpoints(folder):
        path.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
