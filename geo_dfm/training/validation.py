"""Validation during training, through the evaluation command's own code.

The model being trained is wrapped in a fresh :class:`~geo_dfm.models.encoder.Encoder` at every
validation (no stale text cache, no disk embedding cache) and scored with
:func:`geo_dfm.evaluation.zeroshot.evaluate_zeroshot` (top-1 %, on an ImageFolder) and/or
:func:`geo_dfm.evaluation.retrieval.evaluate_retrieval` (R@1/5/10 both ways and their mean %, on a
caption CSV).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geo_dfm.training.base import BaseModel
from geo_dfm.training.config import Validator
from tile_tools.errors import InputError


@dataclass(frozen=True)
class ValidationData:
    """What to validate on: an ImageFolder (``classnames`` replace its folder names, sorted order) and/or
    a retrieval CSV (``filename,title`` columns) with its images folder."""

    image_folder: str | None = None
    classnames: tuple[str, ...] = ()
    templates: str = "rs105"
    retrieval_csv: str | None = None
    retrieval_images: str | None = None
    retrieval_encoding: str = "utf-8"

    @property
    def empty(self) -> bool:
        return self.image_folder is None and self.retrieval_csv is None

    def check(self) -> ValidationData:
        """Refuse missing folders/files before training starts (InputErrors name the parameter)."""
        if self.image_folder is not None and not Path(self.image_folder).is_dir():
            raise InputError("val_dir", f"{self.image_folder}: validation ImageFolder not found")
        if self.retrieval_csv is not None:
            if not Path(self.retrieval_csv).is_file():
                raise InputError("val_csv", f"{self.retrieval_csv}: validation captions table not found")
            if self.retrieval_images is None or not Path(self.retrieval_images).is_dir():
                raise InputError("val_images", "a validation captions table needs its images folder")
        return self

    def inputs(self) -> tuple[str, ...]:
        return tuple(p for p in (self.image_folder, self.retrieval_csv, self.retrieval_images) if p)


def make_validator(
    data: ValidationData, base: BaseModel, device: str = "auto", precision: str = "auto"
) -> Validator | None:
    """``validate(model) -> {metric: %}`` (None when nothing to validate): ``zeroshot_top1``; and
    ``retrieval_image_to_text_r{1,5,10}``, ``retrieval_text_to_image_r{1,5,10}``, ``retrieval_mean_recall``."""
    if data.empty:
        return None
    data = data.check()

    def validate(model) -> dict[str, float]:
        from geo_dfm.evaluation.retrieval import evaluate_retrieval
        from geo_dfm.evaluation.zeroshot import evaluate_zeroshot
        from geo_dfm.models.device import resolve_device, resolve_precision
        from geo_dfm.models.encoder import Encoder

        torch_device = resolve_device(device)
        encoder = Encoder(
            model,
            base.tokenizer,
            base.spec,
            torch_device,
            resolve_precision(precision, torch_device),
            input_size=base.preprocess.size,
            mean=base.preprocess.mean,
            std=base.preprocess.std,
        )
        metrics: dict[str, float] = {}
        if data.image_folder is not None:
            names = list(data.classnames) or None
            result = evaluate_zeroshot(encoder, os.fspath(data.image_folder), names, data.templates)
            metrics["zeroshot_top1"] = float(result.top1)
        if data.retrieval_csv is not None:
            found = evaluate_retrieval(
                encoder, data.retrieval_csv, data.retrieval_images, encoding=data.retrieval_encoding
            )
            recall = found.recall.as_dict()  # image_to_text_rK, text_to_image_rK, mean_recall
            metrics.update({f"retrieval_{name}": float(value) for name, value in recall.items()})
        return metrics

    return validate
