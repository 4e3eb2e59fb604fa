"""A peft LoRA adapter saved with save_pretrained loads on top of the base checkpoint."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from geo_dfm.errors import InputError
from geo_dfm.models.factory import load_encoder

VISION_LORA = r"visual\.transformer\.resblocks\.\d+\.(attn|mlp\.c_fc|mlp\.c_proj)"
RNG = np.random.default_rng(7)
IMAGES = [RNG.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(3)]
TEXTS = ["an aerial image of a harbor."]


@pytest.fixture
def base_checkpoint(tiny_model, tmp_path):
    path = tmp_path / "base.pt"
    torch.save(tiny_model.state_dict(), path)
    return path


def _adapter(tiny_model, folder, trained: bool):
    peft_model = get_peft_model(
        copy.deepcopy(tiny_model), LoraConfig(r=4, lora_alpha=8, target_modules=VISION_LORA)
    )
    if trained:  # stand-in for training: non-zero LoRA B matrices
        torch.manual_seed(3)
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.05)
    peft_model.save_pretrained(folder)
    return peft_model.eval()


def test_untrained_adapter_keeps_the_embeddings(tiny_model, tiny_config_path, base_checkpoint, tmp_path):
    _adapter(tiny_model, tmp_path / "lora0", trained=False)
    base = load_encoder(model_config=str(tiny_config_path), weights=str(base_checkpoint))
    adapted = load_encoder(
        model_config=str(tiny_config_path), weights=str(base_checkpoint), adapter=str(tmp_path / "lora0")
    )
    assert adapted is not base and adapted.adapter == (tmp_path / "lora0").resolve()
    assert np.array_equal(adapted.encode_images(IMAGES), base.encode_images(IMAGES))


def test_trained_adapter_changes_images_only_and_matches_peft(
    tiny_model, tiny_config_path, base_checkpoint, tmp_path
):
    source = _adapter(tiny_model, tmp_path / "lora1", trained=True)
    base = load_encoder(model_config=str(tiny_config_path), weights=str(base_checkpoint))
    adapted = load_encoder(
        model_config=str(tiny_config_path), weights=str(base_checkpoint), adapter=str(tmp_path / "lora1")
    )
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            source.encode_image(adapted.preprocess(IMAGES)), dim=-1
        ).numpy()
    got = adapted.encode_images(IMAGES)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # merged LoRA vs peft's unmerged forward
    assert np.abs(got - base.encode_images(IMAGES)).max() > 1e-3
    assert np.array_equal(adapted.encode_texts(TEXTS), base.encode_texts(TEXTS))  # vision-only adapter


def test_not_an_adapter_folder(tiny_config_path, base_checkpoint, tmp_path):
    with pytest.raises(InputError, match="adapter_config.json"):
        load_encoder(model_config=str(tiny_config_path), weights=str(base_checkpoint), adapter=str(tmp_path))
