"""Shared pytest set-up: offline Hugging Face Hub, headless Qt, artifacts folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """A folder for files worth keeping after the run (screenshots, sample outputs)."""
    path = REPO_ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


# --- synthetic world (geo_dfm.synthetic) -------------------------------------------------------------


@pytest.fixture(scope="session")
def toy_model_path() -> Path:
    """The trained toy model (``geo-dfm-toy`` state dict, .safetensors), trained once and cached.

    The cache is ``$GEO_DFM_CACHE`` if set, else ``~/.cache/geo-dfm``: later sessions reuse it.
    """
    from geo_dfm.synthetic import ensure_toy_model

    return ensure_toy_model()


@pytest.fixture
def synthetic_scene(tmp_path: Path):
    """Factory: ``synthetic_scene(name="scene", **make_scene_kwargs) -> SyntheticScene`` in tmp_path.

    Defaults to a tiny 128×128 scene; pass width/height/crs/gsd/seed/classes/layout as needed.
    """
    from geo_dfm.synthetic import make_scene

    def factory(name: str = "scene", **kwargs):
        kwargs.setdefault("width", 128)
        kwargs.setdefault("height", 128)
        return make_scene(tmp_path / f"{name}.tif", **kwargs)

    return factory
