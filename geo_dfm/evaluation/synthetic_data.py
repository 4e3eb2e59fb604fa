"""A miniature copy of the GeoRSCLIP test data (``rs5m_test_data``) made from synthetic scenes.

The real folder layout (:mod:`geo_dfm.evaluation.test_data`) with synthetic content: land-cover chips
as the AID / RESISC45 / EuroSAT ImageFolders, two captions per chip as the RSITMD / RSICD tables (RSICD
in gb18030, as the real one), and AIR-SLT samples whose polygons outline a class region of a scene.
``geo-dfm eval all`` runs on it with the toy model, e.g. to try the pipeline without the real data.
Scenes use seeds below :data:`geo_dfm.synthetic.TRAINING_SEED_START` (never seen by the toy model).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from geo_dfm.synthetic import CLASS_NAMES, TRAINING_SEED_START, render_scene

SCENE_SEEDS = (30, 31)
SELO_SEEDS = (41, 42)
CHIP_SIZE = 64
SCENE_SIZE = 320
Chips = dict[str, list[np.ndarray]]


def pure_chips(
    seeds: Sequence[int] = SCENE_SEEDS, size: int = CHIP_SIZE, per_class: int = 10, purity: float = 0.95
) -> Chips:
    """``{class name: [size×size×3 uint8 chip, …]}`` (≤ ``per_class`` each) from a half-overlapping grid
    over "lake" and "patchwork" scenes, keeping chips whose majority class covers ``purity`` of them."""
    if max(seeds) >= TRAINING_SEED_START:
        raise ValueError(f"seeds must stay below the toy model's training seeds ({TRAINING_SEED_START})")
    chips: Chips = {}
    for seed in seeds:
        for layout in ("lake", "patchwork"):
            scene = render_scene(SCENE_SIZE, SCENE_SIZE, seed, layout=layout)
            for row in range(0, SCENE_SIZE - size + 1, size // 2):
                for col in range(0, SCENE_SIZE - size + 1, size // 2):
                    block = scene.truth[row : row + size, col : col + size]
                    counts = np.bincount(block.ravel(), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
                    label = int(counts.argmax())
                    found = chips.setdefault(CLASS_NAMES[label], [])
                    if counts[label] >= purity * size * size and len(found) < per_class:
                        found.append(scene.image[row : row + size, col : col + size].copy())
    return {name: images for name, images in chips.items() if images}


def write_image_folder(
    root: Path, chips: Chips, suffix: str = ".jpg", rename: Callable[[str], str] | None = None
) -> Path:
    """An ImageFolder: one folder per class (named ``rename(class)``), images ``<folder>_<i><suffix>``."""
    for name, images in chips.items():
        folder = root / (rename(name) if rename else name)
        folder.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            Image.fromarray(image).save(
                folder / f"{folder.name.replace(' ', '')}_{index:03d}{suffix}", quality=95
            )
    return root


def write_captions(
    folder: Path, chips: Chips, csv_name: str, images_name: str, suffix: str, encoding: str = "utf-8"
) -> Path:
    """A caption table (``filename,title``, two captions per image, one with a non-ASCII character) and
    its images (up to 4 per class) in ``folder/images_name``."""
    images = folder / images_name
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, group in chips.items():
        for index, image in enumerate(group[:4]):
            file = f"{name.replace(' ', '')}_{index}{suffix}"
            Image.fromarray(image).save(images / file)
            rows += [(file, f"an aerial image of {name}"), (file, f"{name} · seen from above")]
    with open(folder / csv_name, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "title"])
        writer.writerows(rows)
    return folder / csv_name


def class_polygon(truth: np.ndarray, class_id: int) -> list[list[float]]:
    """The outline ``[[x, y], …]`` (pixels) of the largest region of ``class_id`` in a truth raster."""
    import cv2

    mask = (truth == class_id).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    largest = max(contours, key=cv2.contourArea)
    return [[float(x), float(y)] for x, y in largest.reshape(-1, 2)]


def write_air_slt(folder: Path, seeds: Sequence[int] = SELO_SEEDS, size: int = SCENE_SIZE) -> list[dict]:
    """``annotations/anno.json`` and ``imgs/<i>.jpg``: per "lake" scene a "water" and a "forest" sample
    (where the class covers more than 400 px), the polygon outlining its largest region."""
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    entries = []
    for index, seed in enumerate(seeds):
        scene = render_scene(size, size, seed, layout="lake")
        name = f"{index}.jpg"
        Image.fromarray(scene.image).save(folder / "imgs" / name, quality=95)
        for caption in ("water", "forest"):
            class_id = CLASS_NAMES.index(caption)
            if (scene.truth == class_id).sum() > 400:
                polygon = class_polygon(scene.truth, class_id)
                entries.append({"caption": caption, "jpg_name": name, "points": [polygon]})
    (folder / "annotations" / "anno.json").write_text(json.dumps(entries), encoding="utf-8")
    return entries


def write_miniature_test_data(root: Path) -> Path:
    """A miniature ``rs5m_test_data`` under ``root`` (created): the real layout, synthetic content."""
    chips = pure_chips(per_class=6)
    write_image_folder(root / "AID", chips, rename=lambda name: name.title())
    write_image_folder(root / "RESISC45", chips, rename=lambda name: name.replace(" ", "_"))
    write_image_folder(
        root / "eurosat-rgb" / "2750", chips, rename=lambda name: name.title().replace(" ", "")
    )
    (root / "eurosat-rgb" / "eurosat").mkdir()  # in the zip too; not the ImageFolder root
    write_captions(root / "rsitmd", chips, "rsitmd_test.csv", "images", ".tif")
    write_captions(root / "rsicd", chips, "rsicd_test.csv", "RSICD_images", ".jpg", encoding="gb18030")
    write_air_slt(root / "AIR-SLT")
    (root / "AIR-SLT" / "selo_cache").mkdir()
    return root
