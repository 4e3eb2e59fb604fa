"""open_clip model configs shipped with geo-dfm (e.g. the toy model trained on synthetic scenes)."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
_registered = False


def register_builtin_configs() -> None:
    """Make open_clip know the architectures in this folder (idempotent)."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True
