"""Zero-shot scene classification of an ImageFolder dataset with any :class:`~geo_dfm.models.encoder.Encoder`.

The paper's protocol (``docs/evaluation.md``): class names from the folder names, per class the mean
of the un-normalised template embeddings (105 RS templates by default) L2-normalised once, each image
assigned the class of highest cosine similarity; top-1 on the complete dataset (no split).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geo_dfm.evaluation.datasets import ImageFolderDataset, read_image_folder
from geo_dfm.evaluation.embedding_cache import EmbeddingCache, image_embeddings
from geo_dfm.evaluation.metrics import confusion_matrix, per_class_accuracy, ranks_of
from geo_dfm.models.prompts import get_templates
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

#: Images scored per matrix product (bounded memory for any dataset size).
SCORE_CHUNK = 8192


@dataclass(frozen=True, eq=False)
class ZeroShotResult:
    """Zero-shot accuracy of one dataset. Accuracies are percentages.

    ``confusion`` (C, C) int64: row = true class, column = predicted; ``per_class`` (C,) accuracy of
    each true class; ``predicted``/``labels`` (N,) class ids of ``files``.
    """

    dataset: str
    root: Path
    classes: tuple[str, ...]
    classnames: tuple[str, ...]
    templates: int
    files: tuple[Path, ...]
    labels: np.ndarray
    predicted: np.ndarray
    top1: float
    top5: float
    per_class: np.ndarray
    confusion: np.ndarray
    encoded_images: int
    reused_images: int

    @property
    def images(self) -> int:
        return len(self.files)

    @property
    def mean_per_class(self) -> float:
        """Mean of the per-class accuracies (balanced accuracy), %."""
        return float(np.nanmean(self.per_class))

    def as_dict(self) -> dict[str, Any]:
        """The numbers a summary reports (no per-image arrays)."""
        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "images": self.images,
            "classes": len(self.classes),
            "templates": self.templates,
            "top1": self.top1,
            "top5": self.top5,
            "mean_per_class": self.mean_per_class,
            "per_class": {name: _number(v) for name, v in zip(self.classes, self.per_class, strict=True)},
            "encoded_images": self.encoded_images,
            "reused_images": self.reused_images,
        }


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def evaluate_zeroshot(
    encoder: Any,
    dataset_dir: str | os.PathLike[str],
    classnames: Sequence[str] | None = None,
    templates: str | Sequence[str] = "rs105",
    *,
    dataset: str = "folder",
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    batch_size: int | None = None,
    workers: int = 2,
) -> ZeroShotResult:
    """Zero-shot accuracy of ``encoder`` on the ImageFolder ``dataset_dir``.

    ``dataset`` (``aid``, ``resisc45``, ``eurosat``, ``folder``) picks the folder rule (EuroSAT: the
    ``2750`` sub-folder) and checks the class folders against the published classes; ``classnames``
    replaces the folder names (one per class folder, sorted order); ``templates`` is anything
    :func:`geo_dfm.models.prompts.get_templates` takes. ``cache`` keeps the image embeddings on disk.
    """
    progress = progress or Progress()
    data = read_image_folder(dataset_dir, dataset)
    names = _classnames(data, classnames)
    template_list = get_templates(templates)
    progress.stage("encode class prompts")
    classes = np.asarray(encoder.class_embeddings(list(names), template_list), dtype=np.float32)
    embeddings = image_embeddings(encoder, data.files, cache, progress, batch_size, workers)
    predicted, true_ranks = _classify(embeddings.vectors, classes, data.labels)
    confusion = confusion_matrix(data.labels, predicted, len(names))
    total = max(1, len(data))
    return ZeroShotResult(
        dataset=dataset,
        root=data.root,
        classes=data.classes,
        classnames=names,
        templates=len(template_list),
        files=data.files,
        labels=data.labels,
        predicted=predicted,
        top1=100.0 * float(np.count_nonzero(true_ranks < 1)) / total,
        top5=100.0 * float(np.count_nonzero(true_ranks < 5)) / total,
        per_class=per_class_accuracy(confusion),
        confusion=confusion,
        encoded_images=embeddings.encoded,
        reused_images=embeddings.reused,
    )


def _classnames(data: ImageFolderDataset, classnames: Sequence[str] | None) -> tuple[str, ...]:
    if classnames is None:
        return data.classnames
    names = tuple(str(name).strip() for name in classnames)
    if len(names) != len(data.classes) or not all(names):
        raise InputError(
            "classnames",
            f"give one non-empty name per class folder ({len(data.classes)}: {', '.join(data.classes)}), "
            f"got {len(names)}",
        )
    return names


def _classify(vectors: np.ndarray, classes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) predicted class ids (first best on ties) and (N,) rank of the true class."""
    predicted, ranks = [], []
    for start in range(0, len(vectors), SCORE_CHUNK):
        scores = np.asarray(vectors[start : start + SCORE_CHUNK], dtype=np.float32) @ classes.T
        predicted.append(np.argmax(scores, axis=1))
        ranks.append(ranks_of(scores, labels[start : start + SCORE_CHUNK]))
    empty = np.zeros(0, np.int64)
    return np.concatenate(predicted or [empty]).astype(np.int64), np.concatenate(ranks or [empty])
