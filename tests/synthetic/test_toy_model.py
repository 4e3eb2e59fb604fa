"""The toy model: a strict open_clip ``geo-dfm-toy`` state dict that knows the synthetic world.

The quality checks encode with open_clip directly (its own model, tokenizer and eval transform) on
fresh scenes from seeds the model never trained on. Run this file as a script for the full gate.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from geo_dfm.models.configs import register_builtin_configs
from geo_dfm.synthetic import (
    CLASS_NAMES,
    RS105_TEMPLATES,
    TOY_MODEL_NAME,
    TRAINING_SEED_START,
    landcover_class,
    render_scene,
    toy_model_file,
)
from geo_dfm.synthetic.toy_model import TOY_RECIPE, toy_model_key


def load_toy(path):
    register_builtin_configs()
    model, _, preprocess = open_clip.create_model_and_transforms(TOY_MODEL_NAME, pretrained=None)
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval(), preprocess, open_clip.get_tokenizer(TOY_MODEL_NAME)


@torch.no_grad()
def encode_images(model, preprocess, images) -> np.ndarray:
    batch = torch.stack([preprocess(Image.fromarray(image)) for image in images])
    return torch.cat([model.encode_image(part, normalize=True) for part in batch.split(256)]).numpy()


@torch.no_grad()
def encode_texts(model, tokenizer, texts) -> np.ndarray:
    """Un-normalised text embeddings."""
    return model.encode_text(tokenizer(list(texts))).numpy()


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def zero_shot_classifier(model, tokenizer) -> np.ndarray:
    """Per class: mean of the un-normalised rs105 template embeddings, L2-normalised once."""
    return unit(
        np.stack(
            [
                encode_texts(model, tokenizer, [t.format(n) for t in RS105_TEMPLATES]).mean(0)
                for n in CLASS_NAMES
            ]
        )
    )


def grid_chips(truth: np.ndarray, size: int, stride: int):
    """(row, col, majority class id, its share) for a regular grid of square chips."""
    h, w = truth.shape
    for row in range(0, h - size + 1, stride):
        for col in range(0, w - size + 1, stride):
            counts = np.bincount(
                truth[row : row + size, col : col + size].ravel(), minlength=len(CLASS_NAMES)
            )
            yield row, col, int(counts.argmax()), counts.max() / size**2


def selo_windows(h: int, w: int, sizes) -> list[tuple[int, int, int]]:
    """The reference SeLo window rule (stride s, then shifted by s/2; last window flush to the border)."""
    windows = set()
    for s in sizes:
        for offset in (0, s // 2):
            for c in range(offset, w, s):
                for r in range(offset, h, s):
                    windows.add((r if r + s < h else h - s, c if c + s < w else w - s, s))
    return sorted(windows)


def measure(path, seeds, size=384, chip_sizes=(64,), selo_sizes=(64, 128)) -> dict[str, float]:
    """Zero-shot accuracy on pure chips, "forest" top-10 precision, SeLo "water" IoU (worst scene)."""
    assert all(seed < TRAINING_SEED_START for seed in seeds)
    model, preprocess, tokenizer = load_toy(path)
    classes = zero_shot_classifier(model, tokenizer)
    forest_text = unit(encode_texts(model, tokenizer, ["forest"]))[0]
    water_text = unit(encode_texts(model, tokenizer, ["water"]))[0]
    correct = total = 0
    embeddings, labels, ious = [], [], []
    for seed in seeds:
        scene = render_scene(size, size, seed, layout="lake")
        for chip in chip_sizes:
            cells = list(grid_chips(scene.truth, chip, chip // 2))
            found = encode_images(
                model, preprocess, [scene.image[r : r + chip, c : c + chip] for r, c, _, _ in cells]
            )
            predicted = (found @ classes.T).argmax(1)
            pure = np.array([share >= 0.95 for *_, share in cells])
            truth = np.array([label for _, _, label, _ in cells])
            correct += int((predicted == truth)[pure].sum())
            total += int(pure.sum())
            embeddings.append(found)
            labels.append(truth)
        windows = selo_windows(size, size, selo_sizes)
        scores = (
            encode_images(model, preprocess, [scene.image[r : r + s, c : c + s] for r, c, s in windows])
            @ water_text
        )
        heat, count = np.zeros((size, size)), np.zeros((size, size))
        for (r, c, s), score in zip(windows, scores, strict=True):
            heat[r : r + s, c : c + s] += score
            count[r : r + s, c : c + s] += 1
        heat /= count
        water = scene.truth == landcover_class("water").id
        hot = heat > np.quantile(heat, 1 - water.mean())
        ious.append((hot & water).sum() / (hot | water).sum())
    found, truth = np.concatenate(embeddings), np.concatenate(labels)
    top10 = np.argsort(-(found @ forest_text))[:10]
    return {
        "accuracy": correct / total,
        "pure_chips": total,
        "forest_top10": float((truth[top10] == landcover_class("forest").id).mean()),
        "water_iou": float(min(ious)),
    }


def test_toy_model_is_cached_under_its_recipe_key(toy_model_path, tmp_path, monkeypatch):
    """Any change of the recipe or of the architecture config names another cache file, so a stale
    toy model is never loaded for a new recipe."""
    assert toy_model_path.suffix == ".safetensors" and toy_model_path.exists()
    key = toy_model_key()
    recipes = [
        dataclasses.replace(TOY_RECIPE, scenes=TOY_RECIPE.scenes + 1),
        dataclasses.replace(TOY_RECIPE, logit_scale=TOY_RECIPE.logit_scale * 2),
        dataclasses.replace(TOY_RECIPE, train=dataclasses.replace(TOY_RECIPE.train, steps=301)),
        dataclasses.replace(TOY_RECIPE, seed=1),
    ]
    keys = {toy_model_key(recipe) for recipe in recipes}
    assert len(keys) == len(recipes) and key not in keys
    assert {toy_model_file(tmp_path, recipe).name for recipe in recipes}.isdisjoint({toy_model_path.name})
    # the architecture config is hashed too: a changed config file gives another key
    from geo_dfm.synthetic import toy_model as toy

    config = json.loads(toy._config_path().read_text())
    config["embed_dim"] = config["embed_dim"] + 1
    changed_config = tmp_path / "config.json"
    changed_config.write_text(json.dumps(config))
    monkeypatch.setattr(toy, "_config_path", lambda: changed_config)
    assert toy_model_key() != key


def test_toy_model_loads_strictly_into_open_clip(toy_model_path):
    register_builtin_configs()
    model = open_clip.create_model(TOY_MODEL_NAME, pretrained=None)
    state = load_file(str(toy_model_path))
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state, strict=True)
    loaded = open_clip.create_model(TOY_MODEL_NAME, pretrained=str(toy_model_path))
    assert torch.equal(loaded.visual.conv1.weight, state["visual.conv1.weight"])


def test_toy_training_is_deterministic_by_seed():
    import dataclasses

    from geo_dfm.synthetic.toy_model import TOY_RECIPE, train_toy_model, training_pairs

    small = dataclasses.replace(
        TOY_RECIPE,
        scenes=1,
        scene_size=96,
        chips_per_scene=24,
        train=dataclasses.replace(TOY_RECIPE.train, steps=2, batch_size=8),
    )
    first, second = training_pairs(small), training_pairs(small)
    assert [p.caption for p in first] == [p.caption for p in second]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, second, strict=True))
    model_a, result_a = train_toy_model(small)
    model_b, result_b = train_toy_model(small)
    assert result_a.losses == result_b.losses
    state_b = model_b.state_dict()
    assert all(torch.equal(value, state_b[key]) for key, value in model_a.state_dict().items())


@pytest.mark.slow
def test_toy_model_knows_the_synthetic_world(toy_model_path):
    numbers = measure(toy_model_path, seeds=(11, 12))
    assert numbers["accuracy"] >= 0.85, numbers
    assert numbers["forest_top10"] >= 0.8, numbers
    assert numbers["water_iou"] >= 0.6, numbers


if (
    __name__ == "__main__"
):  # the full quality gate: python tests/synthetic/test_toy_model.py [model.safetensors]
    from geo_dfm.synthetic import ensure_toy_model

    model_path = sys.argv[1] if len(sys.argv) > 1 else ensure_toy_model()
    print(
        measure(
            model_path,
            seeds=tuple(range(100, 108)),
            size=512,
            chip_sizes=(64, 128),
            selo_sizes=(64, 128, 192),
        )
    )
