"""Rendering a synthetic scene in memory: layout, per-region textures, scene-wide colour effects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from geo_dfm.synthetic.classes import CLASS_NAMES
from geo_dfm.synthetic.layout import make_layout
from geo_dfm.synthetic.textures import CLASS_TEXTURES, RunwayGeometry, runway


@dataclass(frozen=True, eq=False)
class RenderedScene:
    """An RGB image (H×W×3 uint8, values 1-255) with its truth class ids (H×W uint8)."""

    image: np.ndarray
    truth: np.ndarray
    runway: RunwayGeometry | None


def _atmosphere(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Scene-wide colour cast, brightness, haze and sensor noise."""
    cast = 1 + rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    image = image * cast + np.float32(rng.uniform(-12, 12))
    haze = np.float32(rng.uniform(0.0, 0.15))
    image = (1 - haze) * image + haze * np.asarray([190, 196, 206], dtype=np.float32)
    return image + rng.normal(0, 2.0, image.shape).astype(np.float32)


def render_scene(
    width: int, height: int, seed: int, classes: Sequence[str] = CLASS_NAMES, layout: str = "patchwork"
) -> RenderedScene:
    """Render a scene: the same arguments always give the same pixels."""
    rng = np.random.default_rng(seed)
    shape = (height, width)
    plan = make_layout(rng, shape, list(classes), layout)
    image = np.zeros((height, width, 3), dtype=np.float32)
    for class_id in np.unique(plan.classes):
        name = CLASS_NAMES[class_id]
        texture = runway(plan.runway) if name == "runway" else CLASS_TEXTURES[name]
        regions, count = ndimage.label(plan.classes == class_id)
        for index, box in enumerate(ndimage.find_objects(regions), start=1):
            if box is None:
                continue
            patch = texture(
                rng, (box[0].stop - box[0].start, box[1].stop - box[1].start), (box[0].start, box[1].start)
            )
            inside = regions[box] == index
            image[box][inside] = patch[inside]
    image = _atmosphere(rng, image)
    return RenderedScene(np.clip(np.rint(image), 1, 255).astype(np.uint8), plan.classes, plan.runway)
