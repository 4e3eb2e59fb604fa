"""The benchmark metrics on plain arrays: zero-shot accuracy, retrieval recall@K, SeLo Rsu/Ras/Rda/Rmi.

Accuracies and recalls are percentages (0–100), as the papers report them; SeLo metrics are in [0, 1].

Ties: a candidate's rank is the number of candidates scoring strictly higher plus the number scoring
the same but coming earlier (dataset order), i.e. a stable descending sort. The published code breaks
ties with ``torch.topk`` (unspecified); with float embeddings ties are rare.

SeLo (``docs/evaluation.md``, after SemanticLocalizationMetrics ``evaluations/SLM.py``): Rsu rewards
probability inside the annotated regions, Ras (lower is better) measures how far the attention peaks
sit from each region's centre, Rda rewards a single peak per region; Rmi = 0.4·Rsu + 0.35·(1 − Ras) +
0.25·Rda. The cases the reference leaves undefined get these results, each with an
:class:`UndefinedMetricWarning`: an empty region mask → Rsu 0; a region circle of radius 0 → that
region counts as hit only by a peak exactly at its centre (Ras term 0, else 1), and the spread of its
peaks is 0; a constant map → no attention peak (Ras 1, Rda 0).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from geo_dfm.evaluation.selo_maps import ArrayMap, ProbabilityMap, analyse_map, int_polygons
from tile_tools.errors import InputError

RSU_BETA = 0.707
RSU_EPSILON = 1e-7
CIRCLE_EXPAND = 1.5
RAS_GAMMA = 3.0
RDA_ETA = 0.5
PEAK_MIN_PROBABILITY = 0.5
RMI_WEIGHTS = (0.4, 0.35, 0.25)
SELO_KEYS = ("rsu", "ras", "rda", "rmi")


class UndefinedMetricWarning(UserWarning):
    """A SeLo case the reference leaves undefined was given its documented result."""


# --- ranks ---------------------------------------------------------------------------------------


def ranks_of(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """(n,) rank (0 = first) of column ``positive[i]`` within row ``i`` of ``scores`` (n, m), ties by index."""
    scores = np.asarray(scores)
    rows = np.arange(scores.shape[0])
    target = scores[rows, positive][:, None]
    earlier = np.arange(scores.shape[1])[None, :] < positive[:, None]
    return (scores > target).sum(axis=1) + ((scores == target) & earlier).sum(axis=1)


def best_ranks(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """(n,) rank of the best-placed positive of each row: ``positives`` is an (n, m) bool mask, ≥ 1 per row."""
    scores = np.asarray(scores)
    masked = np.where(positives, scores, -np.inf)
    best_score = masked.max(axis=1)
    best_index = np.argmax(positives & (scores == best_score[:, None]), axis=1)
    return ranks_of(scores, best_index)


def percent_within(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """``{k: % of ranks below k}`` (rank 0 = first place)."""
    total = max(1, len(ranks))
    return {int(k): 100.0 * float(np.count_nonzero(ranks < k)) / total for k in ks}


# --- zero-shot classification ----------------------------------------------------------------------


def zeroshot_accuracy(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy (%) of (N, C) class ``scores`` (logits or cosines) against (N,) true class ids."""
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=np.int64)
    _check_scores(scores, labels, "labels")
    return percent_within(ranks_of(scores, labels), ks)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """(C,) accuracy (%) of each true class; NaN for a class without images."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100.0 * np.diag(confusion) / totals, np.nan)


def _check_scores(scores: np.ndarray, labels: np.ndarray, name: str) -> None:
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (N, C) and {name} (N,), got {scores.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"{name} must be class indices below {scores.shape[1]}")


# --- retrieval -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecallAtK:
    """Recall@K (%) in both directions; ``mean_recall`` = mean of all of them (the papers' mR)."""

    image_to_text: Mapping[int, float]
    text_to_image: Mapping[int, float]

    @property
    def mean_recall(self) -> float:
        values = [*self.image_to_text.values(), *self.text_to_image.values()]
        return float(np.mean(values)) if values else float("nan")

    def as_dict(self) -> dict[str, float]:
        out = {f"image_to_text_r{k}": v for k, v in self.image_to_text.items()}
        out.update({f"text_to_image_r{k}": v for k, v in self.text_to_image.items()})
        out["mean_recall"] = self.mean_recall
        return out


def recall_at_k(
    similarity: np.ndarray, image_of_text: np.ndarray, ks: Sequence[int] = (1, 5, 10), chunk: int = 1024
) -> RecallAtK:
    """Recall@K of a (T, I) text × image ``similarity`` matrix; ``image_of_text`` (T,) is each text's image.

    Text → image: a hit when the text's image ranks within the top K images. Image → text: a hit
    when any of the image's texts ranks within its top K texts (every image needs at least one text).
    """
    similarity = np.asarray(similarity)
    image_of_text = np.asarray(image_of_text, dtype=np.int64)
    _check_scores(similarity, image_of_text, "image_of_text")
    text_ranks = np.concatenate(
        [
            ranks_of(similarity[start : start + chunk], image_of_text[start : start + chunk])
            for start in range(0, similarity.shape[0], chunk)
        ]
        or [np.zeros(0, np.int64)]
    )
    image_ranks = image_to_text_ranks(
        lambda start, stop: similarity[:, start:stop].T, similarity.shape[1], image_of_text, chunk
    )
    return RecallAtK(percent_within(image_ranks, ks), percent_within(text_ranks, ks))


def image_to_text_ranks(scores_of, num_images: int, image_of_text: np.ndarray, chunk: int) -> np.ndarray:
    """(I,) best rank of each image's texts; ``scores_of(start, stop)`` gives those images' (n, T) scores."""
    counts = np.bincount(image_of_text, minlength=num_images)
    if num_images and counts.min() == 0:
        raise InputError("image_of_text", f"image {int(np.argmin(counts))} has no text")
    parts = []
    for start in range(0, num_images, chunk):
        stop = min(num_images, start + chunk)
        positives = image_of_text[None, :] == np.arange(start, stop)[:, None]
        parts.append(best_ranks(scores_of(start, stop), positives))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


# --- semantic localization -------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionCircle:
    """A region's circle: centre ``(x, y)`` = truncated mean of its vertices, ``radius`` = int(1.5 × mean
    vertex distance to that centre), pixels."""

    x: int
    y: int
    radius: int


@dataclass(frozen=True, eq=False)
class SeloScores(Mapping[str, float]):
    """Rsu, Ras, Rda, Rmi of one map (a mapping with exactly those keys), with what led to them:
    the attention ``peaks`` ``(x, y)``, each region's ``circles`` and ``notes`` on undefined cases."""

    rsu: float
    ras: float
    rda: float
    rmi: float
    peaks: tuple[tuple[int, int], ...] = ()
    circles: tuple[RegionCircle, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def __getitem__(self, key: str) -> float:
        if key not in SELO_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(SELO_KEYS)

    def __len__(self) -> int:
        return len(SELO_KEYS)


def region_circle(points: np.ndarray) -> RegionCircle:
    """The circle of one polygon given as (n, 2) float vertices (``[x, y]``), as the reference computes it."""
    count = len(points)
    sum_x = sum_y = None
    for x, y in points:  # a left fold, as the reference's ``reduce``
        sum_x = x if sum_x is None else sum_x + x
        sum_y = y if sum_y is None else sum_y + y
    mid_x, mid_y = int(sum_x / count), int(sum_y / count)
    centre = np.array([mid_x, mid_y])
    distances = [np.linalg.norm(np.array(point) - centre) for point in points]
    return RegionCircle(mid_x, mid_y, int(np.mean(distances) * CIRCLE_EXPAND))


def selo_metrics(
    probability: np.ndarray, regions: Sequence[Sequence[Sequence[float]]], block_rows: int | None = None
) -> SeloScores:
    """Rsu, Ras, Rda, Rmi of an (H, W) float ``probability`` map in [0, 1] (e.g. an ``np.memmap``) against
    ``regions``: polygons, each a list of ``[x, y]`` pixel vertices. Undefined cases: module docstring."""
    return selo_scores(ArrayMap(np.asarray(probability)), regions, block_rows)


def selo_scores(
    source: ProbabilityMap, regions: Sequence[Sequence[Sequence[float]]], block_rows: int | None = None
) -> SeloScores:
    """:func:`selo_metrics` on any :class:`~geo_dfm.evaluation.selo_maps.ProbabilityMap` (e.g. a map file)."""
    vertices = _check_regions(regions)
    analysis = analyse_map(source, int_polygons(vertices), block_rows)
    notes: list[str] = []
    rsu = _rsu(analysis.sums, notes)
    if analysis.sums.constant:
        notes.append(f"constant map (every pixel {analysis.sums.minimum:g}): no attention peak")
    peaks = tuple(
        sorted(
            (
                centre
                for centre in analysis.peak_centres
                if source.value(centre[1], centre[0]) >= PEAK_MIN_PROBABILITY
            ),
            key=lambda c: (-source.value(c[1], c[0]), c[1], c[0]),
        )
    )
    circles = tuple(region_circle(points) for points in vertices)
    for index, circle in enumerate(circles):
        if circle.radius == 0:
            notes.append(f"region {index} has a circle of radius 0: hit only by a peak exactly at its centre")
    ras = _ras(circles, peaks)
    rda = _rda(circles, peaks)
    w_su, w_as, w_da = RMI_WEIGHTS
    rmi = w_su * rsu + w_as * (1.0 - ras) + w_da * rda
    for note in notes:
        warnings.warn(note, UndefinedMetricWarning, stacklevel=2)
    return SeloScores(float(rsu), float(ras), float(rda), float(rmi), peaks, circles, tuple(notes))


def _check_regions(regions: Sequence[Sequence[Sequence[float]]]) -> list[np.ndarray]:
    if not regions:
        raise InputError("regions", "no region polygon given")
    checked = []
    for index, points in enumerate(regions):
        try:
            array = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError("regions", f"polygon {index} is not a list of [x, y] points: {exc}") from exc
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0 or not np.isfinite(array).all():
            raise InputError("regions", f"polygon {index} must be a non-empty list of finite [x, y] points")
        checked.append(array)
    return checked


def _rsu(sums, notes: list[str]) -> float:
    if sums.mask_area == 0:
        notes.append("the regions cover no pixel of the map (empty mask): Rsu = 0")
        return 0.0
    inside_ratio = sums.inside / (sums.total - sums.inside + RSU_EPSILON)
    area_ratio = (sums.pixels - sums.mask_area) / sums.mask_area
    return 1.0 - math.exp(-RSU_BETA * inside_ratio * area_ratio)


def _distances(circle: RegionCircle, peaks: Sequence[tuple[int, int]]) -> list[float]:
    return [float(np.linalg.norm(np.array([circle.x - x, circle.y - y], dtype=np.float64))) for x, y in peaks]


def _ras(circles: Sequence[RegionCircle], peaks: Sequence[tuple[int, int]]) -> float:
    if not peaks:
        return 1.0
    shifts = []
    for circle in circles:
        inside = [d for d in _distances(circle, peaks) if d <= circle.radius]
        if circle.radius == 0:
            shifts.append(0.0 if inside else 1.0)
        else:
            shifts.append((float(np.mean(inside)) if inside else circle.radius) / circle.radius)
    shift = float(np.mean(shifts))
    return (math.exp(RAS_GAMMA * shift) - 1.0) / (math.exp(RAS_GAMMA) - 1.0)


def _rda(circles: Sequence[RegionCircle], peaks: Sequence[tuple[int, int]]) -> float:
    values = []
    for circle in circles:
        inside = [p for p, d in zip(peaks, _distances(circle, peaks), strict=True) if d <= circle.radius]
        if len(inside) <= 1:
            values.append(float(len(inside)))
            continue
        points = np.asarray(inside, dtype=np.float64)
        centre = np.average(points, axis=0)
        spread = 0.0
        if circle.radius > 0:
            spread = float(np.mean([np.linalg.norm(centre - p) for p in points])) / circle.radius
        values.append(0.5 * (1.0 - spread) + math.exp(-RDA_ETA * (len(inside) + 2)))
    return float(np.mean(values))
