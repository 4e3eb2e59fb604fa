"""Measuring text maps on the synthetic world, where the truth is known.

For small in-memory scenes (a few hundred pixels, rendered by :func:`render_scene`): chip-level
``blend`` maps and dense patch maps are stitched with the project's own
:class:`~tile_tools.accumulate.WeightedAccumulator` and scored against the truth with pixel IoU
(threshold at the true area) and ROC AUC. The jobs stream real scenes; this module is the yardstick
of tests, benchmarks and ``docs/dense.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geo_dfm.synthetic.classes import landcover_class
from geo_dfm.synthetic.render import render_scene

if TYPE_CHECKING:
    from geo_dfm.models.contrast import TextContrast
    from geo_dfm.models.dense import PatchHead
    from geo_dfm.models.encoder import Encoder


def roc_auc(score: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``truth`` (ties count half; Mann–Whitney)."""
    from scipy.stats import rankdata

    score, truth = np.asarray(score).ravel(), np.asarray(truth, bool).ravel()
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both positive and negative pixels")
    ranks = rankdata(score)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def iou_of_top_area(score: np.ndarray, truth: np.ndarray) -> float:
    """IoU with ``truth`` of the pixels scoring at or above the level whose area equals the true area."""
    score, truth = np.asarray(score), np.asarray(truth, bool)
    level = np.quantile(score, 1.0 - truth.mean())
    predicted = score >= level
    return float((predicted & truth).sum() / (predicted | truth).sum())


@dataclass(frozen=True)
class MapMethod:
    """How a scene map is made: ``head`` None = chip-level ``blend`` (one score per chip), else dense
    patch scores of that :class:`~geo_dfm.models.dense.PatchHead`; square chips of ``chip_size``
    pixels every ``stride`` pixels, splatted with ``weighting``."""

    head: PatchHead | None = None
    chip_size: int = 64
    stride: int = 32
    weighting: str = "hann"

    @property
    def name(self) -> str:
        return "blend" if self.head is None else f"dense-{self.head.variant}"


@dataclass(frozen=True, eq=False)
class SceneMaps:
    """Stitched maps of Q queries over an H×W scene: ``probability`` and ``cosine`` (Q, H, W) float32."""

    probability: np.ndarray
    cosine: np.ndarray


def scene_maps(encoder: Encoder, image: np.ndarray, contrast: TextContrast, method: MapMethod) -> SceneMaps:
    """Maps of ``contrast``'s queries over ``image`` (H×W×3 uint8) made with ``method``."""
    from geo_dfm.models.dense import patch_features
    from tile_tools.accumulate import WeightedAccumulator
    from tile_tools.grid import regular_windows
    from tile_tools.pixel_grid import PixelGrid

    height, width = image.shape[:2]
    windows = regular_windows(width, height, method.chip_size, method.stride)
    crops = [
        image[int(w.row_off) : int(w.row_off + w.height), int(w.col_off) : int(w.col_off + w.width)]
        for w in windows
    ]
    queries = len(contrast.names)
    grid = PixelGrid(width, height, _identity(), None)
    batch = encoder.batch_size  # batches as the jobs (and Encoder.encode_images) make them
    with WeightedAccumulator(grid, 2 * queries, weight=method.weighting, storage="memory") as acc:
        for start in range(0, len(windows), batch):
            part = crops[start : start + batch]
            if method.head is None:
                scores = contrast.score(encoder.encode_images(part))
            else:
                scores = contrast.score_patches(patch_features(encoder, part, method.head))
            for index, window in enumerate(windows[start : start + batch]):
                acc.add(window, scores.channels(index))
        mean = acc.mean()
    return SceneMaps(mean[:queries], mean[queries:])


def _identity():
    from affine import Affine

    return Affine.identity()


@dataclass(frozen=True)
class MapQuality:
    """Per scene where the query's class is present: pixel IoU and ROC AUC of its map; per scene
    where it is absent: the map's maximum."""

    query: str
    ious: tuple[float, ...] = ()
    aucs: tuple[float, ...] = ()
    absent_max: tuple[float, ...] = ()
    present_max: tuple[float, ...] = field(default=())

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.ious))

    @property
    def mean_auc(self) -> float:
        return float(np.mean(self.aucs))


def measure_maps(
    encoder: Encoder,
    contrast: TextContrast,
    method: MapMethod,
    seeds: Iterable[int],
    size: int = 384,
    layout: str = "patchwork",
    band: str = "probability",
    classes: Sequence[str] | None = None,
) -> dict[str, MapQuality]:
    """Quality of each query's map (``band``: ``probability`` or ``cosine``) on fresh scenes of
    ``size`` px from ``seeds`` (each query must name a synthetic class or synonym)."""
    from geo_dfm.synthetic.classes import CLASS_NAMES

    names = tuple(classes) if classes is not None else CLASS_NAMES
    found: dict[str, dict[str, list[float]]] = {
        q: {"ious": [], "aucs": [], "absent_max": [], "present_max": []} for q in contrast.names
    }
    for seed in seeds:
        scene = render_scene(size, size, seed, names, layout)
        maps = scene_maps(encoder, scene.image, contrast, method)
        values = maps.probability if band == "probability" else maps.cosine
        for index, query in enumerate(contrast.names):
            truth = scene.truth == landcover_class(query).id
            entry = found[query]
            if truth.any():
                entry["ious"].append(iou_of_top_area(values[index], truth))
                entry["aucs"].append(roc_auc(values[index], truth))
                entry["present_max"].append(float(values[index].max()))
            else:
                entry["absent_max"].append(float(values[index].max()))
    return {q: MapQuality(q, **{k: tuple(v) for k, v in entry.items()}) for q, entry in found.items()}


def write_random_toy_weights(path: str | os.PathLike[str], seed: int) -> Path:
    """Write an untrained ``geo-dfm-toy`` state dict (``.safetensors``, initialised from ``seed``,
    logit scale as the toy recipe fixes it): the random model a quality gate must reject."""
    import math

    import torch
    from safetensors.torch import save_file

    from geo_dfm.models.factory import build_model
    from geo_dfm.synthetic.toy_model import TOY_MODEL_NAME, TOY_RECIPE
    from tile_tools.atomic import atomic_file

    torch.manual_seed(seed)
    model = build_model(TOY_MODEL_NAME)
    model.logit_scale.data.fill_(math.log(TOY_RECIPE.logit_scale))
    target = Path(path)
    with atomic_file(target) as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    return target
