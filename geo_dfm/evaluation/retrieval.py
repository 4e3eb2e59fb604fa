"""Image–text retrieval on a caption CSV with any :class:`~geo_dfm.models.encoder.Encoder`.

The protocol of the RS5M evaluation (``docs/evaluation.md``): captions of one image grouped; cosine
similarity of L2-normalised embeddings; R@K = 1 when a positive ranks within the top K; R@1/5/10 for
image → text and text → image and their mean (mR). Text and image embeddings stay on disk for large
sets; similarities are computed a block of rows at a time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geo_dfm.evaluation.datasets import read_caption_csv
from geo_dfm.evaluation.embedding_cache import EmbeddingCache, image_embeddings
from geo_dfm.evaluation.metrics import RecallAtK, image_to_text_ranks, percent_within, ranks_of
from geo_dfm.evaluation.scratch import scratch_array
from geo_dfm.progress import Progress

#: Similarity values computed per block (rows × columns), ~32 MB of float32.
BLOCK_VALUES = 8_000_000
TEXT_BATCH = 1024


@dataclass(frozen=True, eq=False)
class RetrievalResult:
    """Recall@K (%) of one caption dataset in both directions and their mean (mR)."""

    dataset: str
    csv_path: Path
    images_dir: Path
    images: int
    texts: int
    recall: RecallAtK
    encoded_images: int
    reused_images: int

    @property
    def image_to_text(self) -> dict[int, float]:
        return dict(self.recall.image_to_text)

    @property
    def text_to_image(self) -> dict[int, float]:
        return dict(self.recall.text_to_image)

    @property
    def mean_recall(self) -> float:
        return self.recall.mean_recall

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "csv": str(self.csv_path),
            "images_dir": str(self.images_dir),
            "images": self.images,
            "texts": self.texts,
            **self.recall.as_dict(),
            "encoded_images": self.encoded_images,
            "reused_images": self.reused_images,
        }


def evaluate_retrieval(
    encoder: Any,
    csv_path: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    *,
    dataset: str = "csv",
    encoding: str = "utf-8",
    image_column: str = "filename",
    caption_column: str = "title",
    ks: Sequence[int] = (1, 5, 10),
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    batch_size: int | None = None,
    workers: int = 2,
) -> RetrievalResult:
    """Retrieval recall of ``encoder`` on the captions of ``csv_path`` (images in ``images_dir``).

    RSICD's table is gb18030 text: pass ``encoding="gb18030"`` (the CLI's ``--dataset rsicd`` does).
    """
    progress = progress or Progress()
    data = read_caption_csv(csv_path, images_dir, encoding, image_column, caption_column)
    images = image_embeddings(encoder, data.files, cache, progress, batch_size, workers)
    distinct, text_of_caption = np.unique(np.asarray(data.captions, dtype=object), return_inverse=True)
    texts = _text_embeddings(encoder, [str(c) for c in distinct], progress)
    progress.stage("rank")
    return RetrievalResult(
        dataset=dataset,
        csv_path=data.csv_path,
        images_dir=data.images_dir,
        images=len(data.files),
        texts=len(data.captions),
        recall=_recall(images.vectors, texts, text_of_caption.reshape(-1), data.image_of_text, ks),
        encoded_images=images.encoded,
        reused_images=images.reused,
    )


def _text_embeddings(encoder: Any, captions: Sequence[str], progress: Progress) -> np.ndarray:
    """(U, D) float32 L2-normalised embeddings of distinct captions (disk-backed when large)."""
    out = scratch_array((len(captions), int(encoder.embed_dim)), np.float32)
    progress.stage("encode captions", total=len(captions))
    for start in range(0, len(captions), TEXT_BATCH):
        chunk = list(captions[start : start + TEXT_BATCH])
        out[start : start + len(chunk)] = np.asarray(encoder.encode_texts(chunk), dtype=np.float32)
        progress.advance(len(chunk))
    return out


def _recall(
    images: np.ndarray,
    texts: np.ndarray,
    text_of_caption: np.ndarray,
    image_of_text: np.ndarray,
    ks: Sequence[int],
) -> RecallAtK:
    """Recall both ways; caption ``t`` has the embedding ``texts[text_of_caption[t]]`` (repeated captions
    share one row, so their scores are identical and ties between them break by dataset order)."""
    rows = max(1, BLOCK_VALUES // max(1, len(images)))
    text_ranks = np.concatenate(
        [
            ranks_of(
                np.asarray(texts[text_of_caption[start : start + rows]]) @ np.asarray(images).T,
                image_of_text[start : start + rows],
            )
            for start in range(0, len(text_of_caption), rows)
        ]
    )
    image_rows = max(1, BLOCK_VALUES // max(1, len(text_of_caption)))

    def image_scores(start: int, stop: int) -> np.ndarray:
        return (np.asarray(images[start:stop]) @ np.asarray(texts).T)[:, text_of_caption]

    image_ranks = image_to_text_ranks(image_scores, len(images), image_of_text, image_rows)
    return RecallAtK(percent_within(image_ranks, ks), percent_within(text_ranks, ks))
