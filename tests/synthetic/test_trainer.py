"""The contrastive trainer: lowers the loss, trains only what requires a gradient, preprocesses like open_clip."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from open_clip.model import CLIP
from PIL import Image

from geo_dfm.training import (
    EvalPreprocess,
    ImageTextPair,
    TrainConfig,
    contrastive_loss,
    dihedral_augment,
    train_contrastive,
)
from tile_tools.errors import InputError

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
PREPROCESS_CFG = {
    "size": (32, 32),
    "mode": "RGB",
    "mean": open_clip.OPENAI_DATASET_MEAN,
    "std": open_clip.OPENAI_DATASET_STD,
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "fill_color": 0,
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread (no OpenMP hand-offs), also on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_model(seed: int = 0) -> CLIP:
    torch.manual_seed(seed)
    model = CLIP(**TINY)
    model.visual.preprocess_cfg = PREPROCESS_CFG
    return model


def _tokenizer():
    return open_clip.get_tokenizer("ViT-B-32", context_length=16)


def _pairs(n: int = 48) -> list[ImageTextPair]:
    """Reddish noise captioned "red things", bluish noise captioned "blue things"."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        red = i % 2 == 0
        base = np.array([200, 40, 40] if red else [40, 40, 200])
        image = np.clip(base + rng.normal(0, 30, (40, 48, 3)), 0, 255).astype(np.uint8)
        pairs.append(ImageTextPair(image, "red things" if red else "blue things", int(red)))
    return pairs


def test_training_lowers_the_loss():
    model = _tiny_model()
    config = TrainConfig(steps=30, batch_size=16, lr=3e-3, warmup_steps=3, device="cpu")
    result = train_contrastive(model, _tokenizer(), _pairs(), config)
    assert result.steps == len(result.losses) == 30
    # 8 positives per row in a batch of 16 with two groups: the loss cannot go below log(8) = 2.08
    assert result.first_loss > 2.6
    assert result.final_loss < 2.25
    assert result.frozen_parameters == 0
    assert not model.training


def test_only_trainable_parameters_change():
    model = _tiny_model()
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith("visual.")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = TrainConfig(steps=5, batch_size=16, lr=1e-2, weight_decay=0.5, warmup_steps=1, device="cpu")
    result = train_contrastive(model, _tokenizer(), [(p.image, p.caption) for p in _pairs()], config)
    visual = sum(p.numel() for n, p in model.named_parameters() if n.startswith("visual."))
    assert result.trainable_parameters == visual
    assert result.frozen_parameters == sum(p.numel() for p in model.parameters()) - visual
    for name, param in model.named_parameters():
        if name.startswith("visual."):
            continue
        assert torch.equal(param, before[name]), name
    assert not torch.equal(model.visual.conv1.weight, before["visual.conv1.weight"])


def test_lora_adapter_training_updates_only_lora_weights():
    peft = pytest.importorskip("peft")
    model = _tiny_model()
    config = peft.LoraConfig(
        r=4, target_modules=r"visual\.transformer\.resblocks\.\d+\.(attn|mlp\.c_fc|mlp\.c_proj)"
    )
    wrapped = peft.get_peft_model(model, config)
    before = {name: p.detach().clone() for name, p in wrapped.named_parameters()}
    train_config = TrainConfig(steps=4, batch_size=16, lr=1e-2, warmup_steps=1, device="cpu")
    result = train_contrastive(wrapped, _tokenizer(), _pairs(), train_config)
    for name, param in wrapped.named_parameters():
        if param.requires_grad:
            assert "lora_" in name
            assert not torch.equal(param, before[name]), name
        else:  # peft merges/unmerges LoRA into MultiheadAttention weights: float round-off only
            assert torch.allclose(param, before[name], rtol=0, atol=1e-6), name
    assert result.trainable_parameters == sum(p.numel() for p in wrapped.parameters() if p.requires_grad)


def test_training_is_deterministic_by_seed():
    config = TrainConfig(steps=4, batch_size=16, device="cpu", seed=3)
    first = train_contrastive(_tiny_model(), _tokenizer(), _pairs(), config)
    second = train_contrastive(_tiny_model(), _tokenizer(), _pairs(), config)
    assert first.losses == second.losses


def test_preprocessing_equals_open_clips_eval_transform():
    model = _tiny_model()
    reference = open_clip.image_transform(
        32, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD
    )
    image = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    ours = EvalPreprocess.for_model(model)
    mine = ours.normalise(ours.to_uint8([image]))[0]
    assert torch.allclose(mine, reference(Image.fromarray(image)), atol=1e-6)


def test_augmentation_applies_square_symmetries_only():
    batch = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4).repeat(16, 1, 1, 1)
    out = dihedral_augment(batch, torch.Generator().manual_seed(0))
    for original, augmented in zip(batch, out, strict=True):
        variants = [torch.rot90(v, k, dims=(1, 2)) for v in (original, original.flip(2)) for k in range(4)]
        assert any(torch.equal(augmented, v) for v in variants)
    assert not torch.equal(out, batch)


def test_grouped_loss_equals_clip_loss_for_distinct_groups():
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    text = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    scale = torch.tensor(10.0)
    plain = contrastive_loss(image, text, scale)
    grouped = contrastive_loss(image, text, scale, torch.arange(6))
    assert torch.allclose(plain, grouped)
    same_class = contrastive_loss(image, text, scale, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert not torch.allclose(plain, same_class)


def test_bad_pairs_are_refused():
    with pytest.raises(InputError):
        train_contrastive(_tiny_model(), _tokenizer(), [], TrainConfig(steps=1, device="cpu"))
    grey = np.zeros((8, 8), dtype=np.uint8)
    with pytest.raises(InputError):
        train_contrastive(_tiny_model(), _tokenizer(), [(grey, "x"), (grey, "y")], TrainConfig(steps=1))
