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
