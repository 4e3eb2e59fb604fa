"""The RS CLIP filter for generated images: an image is kept when its own prompt wins by a margin.

Rule: with ``e`` the image's L2-normalised embedding and ``t`` the texts' (the run's prompts followed
by the ``against`` texts, duplicates removed), an image generated from prompt ``p`` has

    margin = cos(e, t_p) − max over the other texts q ≠ p of cos(e, t_q)

and is kept when ``margin ≥ threshold``. Prompts and texts are encoded verbatim (no templates).
Every prompt needs at least one rival text: a second prompt or an ``against`` text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo_dfm.errors import InputError


@dataclass(frozen=True)
class FilterScore:
    """How an image scored: cosine with its own prompt, and the best-scoring rival text."""

    own_score: float
    rival: str
    rival_score: float

    @property
    def margin(self) -> float:
        """``own_score − rival_score`` (cosine units, −2 … 2)."""
        return self.own_score - self.rival_score


def filter_texts(prompts: Sequence[str], against: Sequence[str]) -> tuple[str, ...]:
    """The texts every image is scored against: prompts, then ``against``, each once, in order."""
    return tuple(dict.fromkeys([*prompts, *against]))


def check_filter_texts(prompts: Sequence[str], against: Sequence[str]) -> tuple[str, ...]:
    """``against`` checked (no blank text) and every prompt given a rival; returns ``against``."""
    for text in against:
        if not text.strip():
            raise InputError("filter_against", "empty competing text")
    if len(filter_texts(prompts, against)) < 2:
        raise InputError(
            "filter_against",
            "the filter compares each image with the other prompts; with a single prompt give competing "
            "texts (e.g. the classes it is confused with) with --filter-against",
        )
    return tuple(against)


def score_images(
    image_embeddings: np.ndarray, own: Sequence[int], text_embeddings: np.ndarray, texts: Sequence[str]
) -> list[FilterScore]:
    """Scores of (N, D) image embeddings whose prompts are ``texts[own[i]]``, against (M, D) texts."""
    if image_embeddings.shape[0] != len(own) or text_embeddings.shape[0] != len(texts) or len(texts) < 2:
        raise ValueError(
            f"score_images: {image_embeddings.shape[0]} images for {len(own)} prompts, "
            f"{text_embeddings.shape[0]} text embeddings for {len(texts)} texts (need at least 2)"
        )
    similarity = image_embeddings.astype(np.float64) @ text_embeddings.astype(np.float64).T
    scores = []
    for row, index in zip(similarity, own, strict=True):
        rivals = row.copy()
        rivals[index] = -np.inf
        best = int(np.argmax(rivals))
        scores.append(FilterScore(float(row[index]), texts[best], float(row[best])))
    return scores


class PromptFilter:
    """Scores generated images with an RS CLIP :class:`~geo_dfm.models.encoder.Encoder`."""

    def __init__(
        self, encoder: Any, prompts: Sequence[str], against: Sequence[str] = (), threshold: float = 0.0
    ) -> None:
        self.encoder = encoder
        self.threshold = float(threshold)
        self.against = check_filter_texts(prompts, against)
        self.texts = filter_texts(prompts, self.against)
        self._index = {text: i for i, text in enumerate(self.texts)}
        self._text_embeddings = np.asarray(encoder.encode_texts(list(self.texts)), dtype=np.float32)

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[FilterScore]:
        """The score of each H×W×3 uint8 image against its own prompt and the rival texts."""
        embeddings = np.asarray(self.encoder.encode_images(list(images)), dtype=np.float32)
        own = [self._index[prompt] for prompt in prompts]
        return score_images(embeddings, own, self._text_embeddings, self.texts)

    def keeps(self, score: FilterScore) -> bool:
        """The documented rule: ``margin ≥ threshold``."""
        return score.margin >= self.threshold

    def describe(self) -> dict[str, Any]:
        return {
            "model": dict(self.encoder.describe()),
            "margin": self.threshold,
            "against": list(self.against),
            "rule": "kept when cos(image, own prompt) - max cos(image, other prompt or --filter-against "
            "text) >= margin",
        }
