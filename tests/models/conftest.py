"""Shared fixtures of the model tests: tiny open_clip configs and checkpoint writers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TINY_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "head_width": 16, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def write_config(folder: Path, name: str, config: dict) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Every test sees empty, private weight caches and no network."""
    root = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf"))
    monkeypatch.setenv("GEO_DFM_CACHE", str(root / "geo-dfm"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
    factory = sys.modules.get("geo_dfm.models.factory")
    if factory is not None:
        factory.clear_encoder_cache()


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("configs"), "tiny-rs", TINY_CONFIG)


@pytest.fixture(scope="session")
def tiny_model(tiny_config_path):
    """A randomly initialised tiny CLIP (the source of the checkpoints written by the tests)."""
    import torch

    from geo_dfm.models.factory import build_model, register_custom_config

    torch.manual_seed(0)
    name, _, _ = register_custom_config(tiny_config_path)
    return build_model(name).eval()


def _place_in_hf_cache(cache: Path, repo: str, filename: str, source: Path | bytes) -> Path:
    """Put a file where huggingface_hub keeps ``repo``/``filename`` (revision main)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    target = folder / "snapshots" / commit / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        target.write_bytes(source)
    else:
        target.symlink_to(source)
    return target


@pytest.fixture
def tiny_config() -> dict:
    """A fresh copy of the tiny config (224 px, patch 32, width 32, QuickGELU)."""
    return json.loads(json.dumps(TINY_CONFIG))


@pytest.fixture
def config_writer():
    """``config_writer(folder, name, config) -> path`` of an open_clip config JSON."""
    return write_config


@pytest.fixture
def hf_cache_placer():
    """``hf_cache_placer(cache, repo, filename, source) -> path`` puts a file in a HF cache layout."""
    return _place_in_hf_cache
