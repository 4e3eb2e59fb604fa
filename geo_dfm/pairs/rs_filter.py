"""The RS5M filtering step: keep the remote-sensing pairs of a generic image–text set.

For each pair, with L2-normalised CLIP embeddings (image ``x``, prompts ``p``, caption ``c``):

- **RS probability** = the softmax mass of the RS prompts among RS and non-RS prompts,
  ``Σ_rs exp(100 x·p) / Σ_all exp(100 x·p)``; a pair is kept when it is at least ``rs_threshold``;
- **similarity** = ``x·c``; with ``min_similarity`` a pair must also reach it (drops mis-captioned
  pairs).

A pair whose image cannot be decoded is removed with reason ``unreadable``. Every pair's scores
go to ``scores.csv``; the kept ones to ``pairs.csv`` (image paths absolute) for tables and
ImageFolders, or to ``shards/kept-NNNNNN.tar`` (samples copied byte for byte) for tar shards.
Everything is streamed in batches: memory holds one batch of images.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geo_dfm.pairs.files import FilePairs
from geo_dfm.pairs.shards import ShardPairs, ShardWriter
from geo_dfm.progress import Progress
from geo_dfm.training.data import UnreadableImage
from tile_tools.errors import InputError

RS_PROMPTS = (
    "a satellite image.",
    "an aerial image.",
    "a remote sensing image.",
    "an aerial photograph of the ground from above.",
    "a satellite view of land and buildings.",
)
NON_RS_PROMPTS = (
    "a photo of a person.",
    "a selfie.",
    "a painting.",
    "a screenshot of text.",
    "a photo of food.",
    "a photo of an animal.",
    "a product photo.",
    "a photo of an indoor room.",
    "a cartoon.",
    "a chart or a diagram.",
)
LOGIT_SCALE = 100.0


@dataclass(frozen=True)
class FilterRule:
    """When a pair is kept (see the module docstring)."""

    rs_threshold: float = 0.5
    min_similarity: float | None = None
    rs_prompts: tuple[str, ...] = RS_PROMPTS
    non_rs_prompts: tuple[str, ...] = NON_RS_PROMPTS

    @classmethod
    def of(
        cls,
        rs_threshold: float,
        min_similarity: float | None,
        rs_prompts: Sequence[str] = (),
        non_rs_prompts: Sequence[str] = (),
    ) -> FilterRule:
        """A checked rule; empty prompt lists mean the built-in ones."""
        if not 0.0 <= rs_threshold <= 1.0:
            raise InputError("rs_threshold", f"must be between 0 and 1, got {rs_threshold}")
        if min_similarity is not None and not -1.0 <= min_similarity <= 1.0:
            raise InputError(
                "min_similarity", f"a cosine similarity is between -1 and 1, got {min_similarity}"
            )
        rs = tuple(p.strip() for p in rs_prompts if p.strip()) or RS_PROMPTS
        other = tuple(p.strip() for p in non_rs_prompts if p.strip()) or NON_RS_PROMPTS
        if set(rs) & set(other):
            raise InputError("rs_prompts", "a prompt is both an RS and a non-RS prompt")
        return cls(rs_threshold, min_similarity, rs, other)

    def decide(self, rs_probability: np.ndarray, similarity: np.ndarray) -> list[str | None]:
        """Per pair ``None`` (kept) or why it is removed (``not_rs``, ``low_similarity``)."""
        reasons: list[str | None] = []
        for p, s in zip(rs_probability, similarity, strict=True):
            if p < self.rs_threshold:
                reasons.append("not_rs")
            elif self.min_similarity is not None and s < self.min_similarity:
                reasons.append("low_similarity")
            else:
                reasons.append(None)
        return reasons


def rs_probability(image_embeddings: np.ndarray, rs_texts: np.ndarray, other_texts: np.ndarray) -> np.ndarray:
    """(N,) softmax mass of the RS prompts, from (N, D) images and (R, D) / (O, D) prompts (normalised)."""
    logits = LOGIT_SCALE * image_embeddings.astype(np.float64) @ np.concatenate([rs_texts, other_texts]).T
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights[:, : len(rs_texts)].sum(axis=1) / weights.sum(axis=1)


@dataclass
class FilterReport:
    """Counts and score statistics of a filter run, and the files it wrote (relative names)."""

    kept: int = 0
    removed: int = 0
    removed_by: dict[str, int] = field(default_factory=dict)
    score_summary: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    q = np.quantile(np.asarray(values), [0.0, 0.1, 0.5, 0.9, 1.0])
    return dict(zip(("min", "p10", "median", "p90", "max"), (round(float(v), 6) for v in q), strict=True))


def filter_pairs(
    source: FilePairs | ShardPairs,
    encoder: Any,
    rule: FilterRule,
    folder: Path,
    progress: Progress,
    batch_size: int = 32,
) -> FilterReport:
    """Score every pair of ``source`` with ``encoder`` and write the kept ones into ``folder``."""
    rs_texts = encoder.encode_texts(list(rule.rs_prompts))
    other_texts = encoder.encode_texts(list(rule.non_rs_prompts))
    report = FilterReport()
    removed: Counter[str] = Counter()
    probabilities: list[float] = []
    similarities: list[float] = []
    shards = isinstance(source, ShardPairs)
    progress.stage("score pairs", total=len(source))
    with open(folder / "scores.csv", "w", newline="", encoding="utf-8") as scores_file:
        scores = csv.writer(scores_file)
        scores.writerow(["image", "caption", "rs_probability", "similarity", "kept", "reason"])
        if shards:
            writer: Any = ShardWriter(folder / "shards", prefix="kept")
            items = ((sample, sample.decode()) for sample in source.iter_ordered())
        else:
            kept_file = open(folder / "pairs.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115
            writer = csv.writer(kept_file)
            writer.writerow(["image_path", "caption"])
            items = source.iter_ordered()
        try:
            for batch in _batches(items, batch_size):
                readable = [pair for _, pair in batch if not isinstance(pair, UnreadableImage)]
                verdicts: Iterator = iter(())
                if readable:
                    images = encoder.encode_images(
                        [pair.image for pair in readable], batch_size=len(readable)
                    )
                    captions = encoder.encode_texts([pair.caption for pair in readable])
                    probability = rs_probability(images, rs_texts, other_texts)
                    similarity = (images * captions).sum(axis=1)
                    verdicts = zip(probability, similarity, rule.decide(probability, similarity), strict=True)
                for ref, pair in batch:
                    name = ref.name if shards else str(ref.image)
                    text = pair.caption if not isinstance(pair, UnreadableImage) else _caption_of(ref)
                    if isinstance(pair, UnreadableImage):
                        p = s = float("nan")
                        reason: str | None = "unreadable"
                    else:
                        p, s, reason = next(verdicts)
                        probabilities.append(float(p))
                        similarities.append(float(s))
                    scores.writerow([name, text, f"{p:.6f}", f"{s:.6f}", reason is None, reason or ""])
                    if reason is None:
                        report.kept += 1
                        if shards:
                            writer.write(ref.key, ref.parts)
                        else:
                            writer.writerow([str(ref.image), text])
                    else:
                        report.removed += 1
                        removed[reason] += 1
                progress.advance(len(batch))
        finally:
            if shards:
                writer.close()
            else:
                kept_file.close()
    report.removed_by = dict(sorted(removed.items()))
    report.score_summary = {
        "rs_probability": _quantiles(probabilities),
        "similarity": _quantiles(similarities),
    }
    report.outputs = {"scores": "scores.csv", **({"shards": "shards"} if shards else {"pairs": "pairs.csv"})}
    return report


def _caption_of(ref: Any) -> str:
    caption = getattr(ref, "caption", None)
    return caption() if callable(caption) else str(caption or "")
