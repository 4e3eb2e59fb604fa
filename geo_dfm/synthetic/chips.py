"""Captioned training chips cut from synthetic scenes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geo_dfm.synthetic.classes import CLASS_NAMES, LANDCOVER_CLASSES, NODATA_CLASS, sample_caption
from geo_dfm.synthetic.render import RenderedScene
from geo_dfm.training import ImageTextPair


@dataclass(frozen=True)
class ChipSampling:
    """How chips are cut: sizes (log-uniform, pixels) and the least share of the majority class."""

    min_size: int = 24
    max_size: int = 192
    min_purity: float = 0.55


def sample_chips(
    scene: RenderedScene, count: int, rng: np.random.Generator, sampling: ChipSampling = ChipSampling()
) -> list[ImageTextPair]:
    """``count`` chips of random sizes, centred on pixels of classes drawn evenly from those present.

    Each chip is captioned (:func:`sample_caption`) by its majority class, grouped by that class id,
    and kept only when the majority covers at least ``min_purity`` of it (mixed chips teach the model
    to degrade gracefully at boundaries).
    """
    h, w = scene.truth.shape
    present = [c for c in range(len(CLASS_NAMES)) if (scene.truth == c).any()]
    pixels = {c: np.flatnonzero(scene.truth == c) for c in present}
    chips: list[ImageTextPair] = []
    attempts = 0
    while len(chips) < count and attempts < 20 * count:
        attempts += 1
        size = int(np.exp(rng.uniform(np.log(sampling.min_size), np.log(min(sampling.max_size, h, w)))))
        wanted = present[rng.integers(len(present))]
        centre = pixels[wanted][rng.integers(len(pixels[wanted]))]
        row = int(np.clip(centre // w - size // 2, 0, h - size))
        col = int(np.clip(centre % w - size // 2, 0, w - size))
        block = scene.truth[row : row + size, col : col + size]
        counts = np.bincount(block.ravel(), minlength=NODATA_CLASS + 1)[: len(CLASS_NAMES)]
        label = int(np.argmax(counts))
        if counts[label] < sampling.min_purity * block.size:
            continue
        image = scene.image[row : row + size, col : col + size]
        chips.append(ImageTextPair(image, sample_caption(LANDCOVER_CLASSES[label], rng), label))
    return chips
