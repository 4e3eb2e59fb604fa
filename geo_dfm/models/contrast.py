"""Scores with contrast: a query's probability against a background vocabulary, plus raw cosine.

A lone query's cosine map has no zero: min–max stretching shows a hot spot even where the query is
absent. Here every query competes with a vocabulary of generic remote-sensing classes
(:data:`DEFAULT_BACKGROUND`, user-settable): ``p = softmax(T · [cos(f, query), cos(f, b₁), …])₀``
with ``T`` the model's logit scale, so a query absent from the scene loses to the background and
its map stays low. The same :class:`TextContrast` scores chip embeddings (N, D) for ``blend`` maps
and patch features (N, D, h, w) for dense maps.

Two modes: ``joint=False`` (localize) scores each query against the background alone; ``joint=True``
(classify) lets the labels compete with each other and with the background. A background name equal
to a query (after :func:`~geo_dfm.models.prompts.normalize_class_name`) is left out of that query's
competitors; a *synonym* in the background splits the query's probability, so choose the background
to suit the queries. Optional CLS subtraction (SegEarth-OV's global-bias alleviation): logits of
``cos(f, t) − λ · cos(image, t)``, with the window's ordinary image embedding as ``image``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from geo_dfm.errors import InputError
from geo_dfm.models.prompts import normalize_class_name

if TYPE_CHECKING:
    from geo_dfm.models.dense import PatchFeatures
    from geo_dfm.models.encoder import Encoder

DEFAULT_BACKGROUND: tuple[str, ...] = (
    "water",
    "forest",
    "grassland",
    "farmland",
    "wetland",
    "bare soil",
    "sand",
    "residential area",
    "industrial area",
    "road",
    "parking lot",
    "clouds",
)
"""Generic remote-sensing land-cover classes a query competes with (encoded like the queries)."""

SEGEARTH_CLS_LAMBDA = 0.3
"""SegEarth-OV's weight of the subtracted CLS (image-level) score."""


def check_names(names: Sequence[str], parameter: str) -> tuple[str, ...]:
    """Non-blank, distinct (after normalisation) names, or an :class:`InputError` naming ``parameter``."""
    cleaned = tuple(str(name).strip() for name in names)
    seen: dict[str, str] = {}
    for name in cleaned:
        if not name:
            raise InputError(parameter, "empty name in the list")
        key = normalize_class_name(name)
        if key in seen:
            raise InputError(parameter, f"duplicate name {name!r} (same as {seen[key]!r})")
        seen[key] = name
    return cleaned


@dataclass(frozen=True, eq=False)
class ContrastScores:
    """Scores of Q queries for N items, with the items' spatial shape ``S`` (``()`` for chips,
    ``(h, w)`` for patch grids): ``probability`` (N, Q, *S) float32 in [0, 1] and ``cosine``
    (N, Q, *S) float32 raw cosine similarity (never CLS-subtracted)."""

    probability: np.ndarray
    cosine: np.ndarray

    def channels(self, index: int) -> np.ndarray:
        """(2Q, *S) float32 of item ``index``: the Q probabilities, then the Q cosines — the values a
        :class:`tile_tools.accumulate.WeightedAccumulator` with 2Q channels takes for its window
        (it upsamples an (h, w) patch grid bilinearly, pixel-centre aligned, onto the window)."""
        return np.concatenate([self.probability[index], self.cosine[index]], axis=0)

    def all_channels(self) -> np.ndarray:
        """(N, 2Q, *S) float32: :meth:`channels` of every item."""
        return np.concatenate([self.probability, self.cosine], axis=1)


@dataclass(frozen=True, eq=False)
class TextContrast:
    """Query (or label) embeddings scored against background embeddings at temperature ``temperature``.

    ``texts`` (Q, D) and ``background`` (B, D) are float32 L2-normalised; ``names`` and
    ``background_names`` say what they are. ``cls_lambda`` > 0 subtracts that share of the image-level
    score (needs image embeddings when scoring).
    """

    names: tuple[str, ...]
    texts: np.ndarray
    background_names: tuple[str, ...]
    background: np.ndarray
    temperature: float
    joint: bool = False
    cls_lambda: float = 0.0

    def __post_init__(self) -> None:
        if self.texts.shape[0] != len(self.names) or self.background.shape[0] != len(self.background_names):
            raise ValueError("names and embeddings differ in length")
        if not self.joint and not self._competitors().any(axis=1).all():
            raise InputError(
                "background", "each query needs at least one other background name to compete with"
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.cls_lambda < 0:
            raise InputError("cls_lambda", f"must be 0 or more, got {self.cls_lambda}")

    @classmethod
    def build(
        cls,
        encoder: Encoder,
        names: Sequence[str],
        background: Sequence[str] = DEFAULT_BACKGROUND,
        *,
        joint: bool = False,
        templates: str | Sequence[str] | None = None,
        cls_lambda: float = 0.0,
    ) -> TextContrast:
        """Embed ``names`` and ``background`` with ``encoder`` the same way: verbatim texts when
        ``templates`` is None (localize queries), else the template ensemble of
        :meth:`Encoder.class_embeddings` (classify labels); temperature = the model's logit scale."""
        names = check_names(names, "queries")
        background = check_names(background, "background")

        def embed(texts: tuple[str, ...]) -> np.ndarray:
            if not texts:
                return np.zeros((0, encoder.embed_dim), np.float32)
            if templates is None:
                return np.asarray(encoder.encode_texts(list(texts)), np.float32)
            return np.asarray(encoder.class_embeddings(list(texts), templates), np.float32)

        return cls(
            names=names,
            texts=embed(names),
            background_names=background,
            background=embed(background),
            temperature=float(encoder.logit_scale),
            joint=joint,
            cls_lambda=cls_lambda,
        )

    def _competitors(self) -> np.ndarray:
        """(Q, B) bool: background rows that compete with each query (not the query's own name)."""
        own = [normalize_class_name(n) for n in self.names]
        other = [normalize_class_name(n) for n in self.background_names]
        keep = np.ones((len(own), len(other)), bool)
        for i, name in enumerate(own):
            for j, candidate in enumerate(other):
                keep[i, j] = candidate != name and not (self.joint and candidate in own)
        return keep

    def score(self, features: np.ndarray, image: np.ndarray | None = None) -> ContrastScores:
        """Scores of ``features`` (N, D, *S) float32 L2-normalised along D; ``image`` (N, D) is
        required when ``cls_lambda`` > 0. Returns (N, Q, *S) probability and cosine."""
        features = np.asarray(features, np.float32)
        if features.ndim < 2 or features.shape[1] != self.texts.shape[1]:
            raise ValueError(
                f"features {features.shape} do not match embeddings of size {self.texts.shape[1]}"
            )
        spatial = features.shape[2:]
        vocabulary = np.concatenate([self.texts, self.background])  # (K, D)
        cosine = np.einsum("nd...,kd->nk...", features, vocabulary)  # (N, K, *S)
        adjusted = cosine
        if self.cls_lambda > 0:
            if image is None:
                raise ValueError("cls_lambda > 0 needs the image embeddings")
            global_cos = np.asarray(image, np.float32) @ vocabulary.T  # (N, K)
            adjusted = cosine - self.cls_lambda * global_cos.reshape(*global_cos.shape, *([1] * len(spatial)))
        logits = self.temperature * adjusted
        q = len(self.names)
        if self.joint:
            keep = np.concatenate([np.ones(q, bool), self._competitors().all(axis=0)])
            probability = _softmax(logits[:, keep], axis=1)[:, :q]
        else:
            competitors = self._competitors()
            rows = []
            for i in range(q):
                own = logits[:, i : i + 1]
                rows.append(
                    _softmax(np.concatenate([own, logits[:, q:][:, competitors[i]]], axis=1), 1)[:, 0]
                )
            probability = np.stack(rows, axis=1)
        return ContrastScores(probability.astype(np.float32), cosine[:, :q].astype(np.float32))

    def score_patches(self, features: PatchFeatures) -> ContrastScores:
        """Scores of dense :class:`~geo_dfm.models.dense.PatchFeatures`: (N, Q, h, w)."""
        return self.score(features.patches, features.image)


def _softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)
