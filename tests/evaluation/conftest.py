"""Synthetic benchmark data: ImageFolders, caption tables and AIR-SLT samples cut from synthetic scenes.

Scenes come from seeds below ``TRAINING_SEED_START`` and outside the toy recipe-selection seeds 12–20.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from geo_dfm.synthetic import CLASS_NAMES, TRAINING_SEED_START, render_scene

SCENE_SEEDS = (30, 31)
SELO_SEEDS = (41, 42)
CHIP = 64
assert max(SCENE_SEEDS + SELO_SEEDS) < TRAINING_SEED_START


def pure_chips(seeds=SCENE_SEEDS, size=CHIP, per_class=10, purity=0.95):
    """``{class name: [H×W×3 uint8 chip, ...]}``: grid chips whose majority class covers ``purity``."""
    chips: dict[str, list[np.ndarray]] = {}
    for seed in seeds:
        for layout in ("lake", "patchwork"):
            scene = render_scene(320, 320, seed, layout=layout)
            for row in range(0, 320 - size + 1, size // 2):
                for col in range(0, 320 - size + 1, size // 2):
                    block = scene.truth[row : row + size, col : col + size]
                    counts = np.bincount(block.ravel(), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
                    label = int(counts.argmax())
                    found = chips.setdefault(CLASS_NAMES[label], [])
                    if counts[label] >= purity * size * size and len(found) < per_class:
                        found.append(scene.image[row : row + size, col : col + size].copy())
    return {name: images for name, images in chips.items() if images}


def write_image_folder(root: Path, chips: dict[str, list[np.ndarray]], suffix=".jpg", rename=None) -> Path:
    """One folder per class (``rename(name)`` → folder name), images ``<class>_<i><suffix>``."""
    for name, images in chips.items():
        folder = root / (rename(name) if rename else name)
        folder.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{folder.name.replace(' ', '')}_{index:03d}{suffix}", quality=95)
    return root


def write_captions(folder: Path, chips, csv_name: str, images_name: str, suffix: str, encoding="utf-8") -> Path:
    """A caption table (``filename,title``; two captions per image, grouped by image name) and images."""
    images = folder / images_name
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, group in chips.items():
        for index, image in enumerate(group[:4]):
            file = f"{name.replace(' ', '')}_{index}{suffix}"
            Image.fromarray(image).save(images / file)
            rows += [(file, f"an aerial image of {name}"), (file, f"{name} seen from above")]
    with open(folder / csv_name, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "title"])
        writer.writerows(rows)
    return folder / csv_name


def class_polygon(truth: np.ndarray, class_id: int) -> list[list[float]]:
    """The outline ``[[x, y], ...]`` of the largest region of ``class_id``."""
    mask = (truth == class_id).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    largest = max(contours, key=cv2.contourArea)
    return [[float(x), float(y)] for x, y in largest.reshape(-1, 2)]


def write_air_slt(folder: Path, seeds=SELO_SEEDS, size=320) -> list[dict]:
    """``annotations/anno.json`` and ``imgs/<i>.jpg``: per scene a "water" and (if present) a "forest" sample."""
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
                entries.append({"caption": caption, "jpg_name": name, "points": [class_polygon(scene.truth, class_id)]})
    (folder / "annotations" / "anno.json").write_text(json.dumps(entries), encoding="utf-8")
    return entries


def write_test_data(root: Path) -> Path:
    """A miniature ``rs5m_test_data``: the real folder layout, synthetic content."""
    chips = pure_chips(per_class=6)
    write_image_folder(root / "AID", chips, rename=lambda n: n.title())
    write_image_folder(root / "RESISC45", chips, rename=lambda n: n.replace(" ", "_"))
    write_image_folder(root / "eurosat-rgb" / "2750", chips, rename=lambda n: n.title().replace(" ", ""))
    (root / "eurosat-rgb" / "eurosat").mkdir()  # present in the zip, not an ImageFolder root
    write_captions(root / "rsitmd", chips, "rsitmd_test.csv", "images", ".tif")
    write_captions(root / "rsicd", chips, "rsicd_test.csv", "RSICD_images", ".jpg", encoding="gb18030")
    write_air_slt(root / "AIR-SLT")
    (root / "AIR-SLT" / "selo_cache").mkdir()
    return root


@pytest.fixture(scope="session")
def test_data_dir(tmp_path_factory) -> Path:
    return write_test_data(tmp_path_factory.mktemp("rs5m") / "rs5m_test_data")


@pytest.fixture(scope="session")
def toy_encoder(toy_model_path):
    from geo_dfm.models.factory import load_encoder

    return load_encoder("toy", device="cpu")
