"""The score stage: image features and text embeddings → per-chip values a stitcher splats.

Inputs are L2-normalised float32 arrays: features (n, D) of a batch of chips, texts or classes (Q, D).
Outputs are float32 (n, Q): kept per batch, never (N, D) for a whole scene.
"""

from __future__ import annotations

import numpy as np

#: CLIP's zero-shot temperature (logits = 100 · cosine), as the benchmarks use it.
ZERO_SHOT_LOGIT_SCALE = 100.0


def cosine_scores(features: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """(n, Q) cosine similarities of L2-normalised features (n, D) and texts (Q, D)."""
    return np.asarray(features, np.float32) @ np.asarray(texts, np.float32).T


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def zero_shot_probabilities(
    features: np.ndarray, classes: np.ndarray, logit_scale: float = ZERO_SHOT_LOGIT_SCALE
) -> np.ndarray:
    """(n, C) float32 class probabilities: softmax of ``logit_scale · cosine`` (computed in float64)."""
    logits = logit_scale * (np.asarray(features, np.float64) @ np.asarray(classes, np.float64).T)
    return softmax(logits, axis=1).astype(np.float32)
