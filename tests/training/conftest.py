"""Fixtures of the training tests: a tiny open_clip CLIP (config + checkpoint), pairs on disk, one thread."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread (no OpenMP hand-offs), also on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    factory = sys.modules.get("geo_dfm.models.factory")
    if factory is not None:
        factory.clear_encoder_cache()


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny-train.json"
    path.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    return path


@pytest.fixture
def tiny_clip(tiny_config_path):
    """``make(seed) -> model``: a freshly initialised tiny CLIP registered with open_clip."""
    from geo_dfm.models.factory import build_model, register_custom_config

    name, _, _ = register_custom_config(tiny_config_path)

    def make(seed: int = 0):
        torch.manual_seed(seed)
        return build_model(name)

    return make


@pytest.fixture(scope="session")
def tiny_weights(tiny_config_path, tmp_path_factory) -> Path:
    """A tiny CLIP checkpoint (.safetensors, open_clip key names)."""
    from safetensors.torch import save_file

    from geo_dfm.models.factory import build_model, register_custom_config

    name, _, _ = register_custom_config(tiny_config_path)
    torch.manual_seed(0)
    model = build_model(name)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def colour_images(
    n: int, seed: int = 0, size: tuple[int, int] = (40, 48)
) -> list[tuple[np.ndarray, str, int]]:
    """Reddish noise "red things" (group 1), bluish noise "blue things" (group 0), alternating."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        red = i % 2 == 0
        base = np.array([200, 40, 40] if red else [40, 40, 200])
        image = np.clip(base + rng.normal(0, 30, (*size, 3)), 0, 255).astype(np.uint8)
        out.append((image, "red things" if red else "blue things", int(red)))
    return out


@pytest.fixture
def pairs_csv(tmp_path) -> Path:
    """``pairs.csv`` (image_path,caption,label) over 32 PNG images in ``images/``."""
    folder = tmp_path / "images"
    folder.mkdir()
    lines = ["image_path,caption,label"]
    for i, (image, caption, _) in enumerate(colour_images(32)):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
        lines.append(f"images/{i:03d}.png,{caption},{caption.split()[0]}")
    path = tmp_path / "pairs.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
