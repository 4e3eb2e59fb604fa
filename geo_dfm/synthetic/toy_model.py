"""The toy model: the tiny open_clip architecture ``geo-dfm-toy`` trained on synthetic chips.

:func:`ensure_toy_model` trains it once (about a minute on two CPU cores) and caches the state dict
as ``.safetensors``; the file name carries a hash of the architecture config and the recipe, so any
change retrains. Training scenes use seeds from :data:`TRAINING_SEED_START` upwards: tests and demos
should draw their scenes from seeds below it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from geo_dfm.progress import Progress
from geo_dfm.synthetic.chips import ChipSampling, sample_chips
from geo_dfm.synthetic.render import render_scene
from geo_dfm.training import TrainConfig, TrainResult

TOY_MODEL_NAME = "geo-dfm-toy"
TRAINING_SEED_START = 1_000_000
"""Seeds of the toy model's training scenes start here; evaluate on seeds below it."""


@dataclass(frozen=True)
class ToyRecipe:
    """Everything that decides the toy model's weights (hashed into the cache file name)."""

    version: int = 3
    scenes: int = 16
    scene_size: int = 384
    chips_per_scene: int = 200
    sampling: ChipSampling = ChipSampling()
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=300, batch_size=128, lr=1e-3, weight_decay=0.1, warmup_steps=10, device="cpu", seed=0
        )
    )
    logit_scale: float = 8.0
    """Fixed (untrained) CLIP temperature: a low scale forces wide cosine gaps between classes,
    which sharpens "query vs chip" similarity maps (SeLo heatmaps)."""
    seed: int = 0


TOY_RECIPE = ToyRecipe()


def cache_dir() -> Path:
    """``$GEO_DFM_CACHE`` if set, else ``~/.cache/geo-dfm``."""
    return Path(os.environ.get("GEO_DFM_CACHE") or Path.home() / ".cache" / "geo-dfm")


def _config_path() -> Path:
    from geo_dfm.models.configs import CONFIG_DIR

    return CONFIG_DIR / f"{TOY_MODEL_NAME}.json"


def toy_model_key(recipe: ToyRecipe = TOY_RECIPE) -> str:
    """Hash of the architecture config and the recipe (first 16 hex digits)."""
    config = json.loads(_config_path().read_text())
    payload = json.dumps({"config": config, "recipe": asdict(recipe)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def toy_model_file(cache: Path | None = None, recipe: ToyRecipe = TOY_RECIPE) -> Path:
    """Where the toy model for ``recipe`` is (or will be) cached."""
    return (cache or cache_dir()) / f"{TOY_MODEL_NAME}-{toy_model_key(recipe)}.safetensors"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def training_pairs(recipe: ToyRecipe = TOY_RECIPE) -> list:
    """The captioned chips the toy model trains on (deterministic for a recipe)."""
    rng = np.random.default_rng(recipe.seed)
    pairs = []
    for index in range(recipe.scenes):
        layout = "lake" if index % 2 else "patchwork"
        scene = render_scene(recipe.scene_size, recipe.scene_size, TRAINING_SEED_START + index, layout=layout)
        pairs += sample_chips(scene, recipe.chips_per_scene, rng, recipe.sampling)
    return pairs


def train_toy_model(recipe: ToyRecipe = TOY_RECIPE, progress: Progress | None = None):
    """Build ``geo-dfm-toy`` from a fixed seed and train it on one CPU thread; returns (model, TrainResult)."""
    import open_clip
    import torch

    from geo_dfm.models.configs import register_builtin_configs
    from geo_dfm.training import train_contrastive

    register_builtin_configs()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same arithmetic on every machine; no OpenMP stalls on a busy one
    try:
        torch.manual_seed(recipe.seed)
        model = open_clip.create_model(TOY_MODEL_NAME, pretrained=None)
        model.logit_scale.data.fill_(math.log(recipe.logit_scale))
        model.logit_scale.requires_grad_(False)
        tokenizer = open_clip.get_tokenizer(TOY_MODEL_NAME)
        result: TrainResult = train_contrastive(
            model, tokenizer, training_pairs(recipe), recipe.train, progress
        )
        model.logit_scale.requires_grad_(True)
    finally:
        torch.set_num_threads(threads)
    return model, result


def ensure_toy_model(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """Path of the trained toy model's ``.safetensors`` state dict, training it first if needed.

    A file lock beside the file keeps two processes from training at once; the file is written
    atomically, so a reader never sees half of it.
    """
    from safetensors.torch import save_file

    from tile_tools.atomic import atomic_file

    target = toy_model_file(cache_dir)
    if target.exists():
        return target
    with _exclusive(target.with_name(target.name + ".lock")):
        if target.exists():
            return target
        model, result = train_toy_model(TOY_RECIPE, progress)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        metadata = {
            "model": TOY_MODEL_NAME,
            "key": toy_model_key(),
            "steps": str(result.steps),
            "final_loss": f"{result.final_loss:.4f}",
            "train_seconds": f"{result.seconds:.1f}",
        }
        with atomic_file(target) as tmp:
            save_file(state, str(tmp), metadata=metadata)
    return target
