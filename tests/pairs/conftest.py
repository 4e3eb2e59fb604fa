"""Fixtures of the pairs tests: small images on disk, one torch thread, a clean encoder cache."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    factory = sys.modules.get("geo_dfm.models.factory")
    if factory is not None:
        factory.clear_encoder_cache()


@pytest.fixture
def write_png():
    """``write_png(path, seed, size=(24, 32)) -> path`` of a random RGB PNG."""

    def write(path, seed: int = 0, size=(24, 32)):
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        return path

    return write
