"""The real ViT-B-32-quickgelu architecture, randomly initialised once, through the published file formats."""

from __future__ import annotations

import os

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from geo_dfm.models.encoder import Encoder
from geo_dfm.models.factory import load_encoder
from geo_dfm.models.registry import get_model_spec

pytestmark = pytest.mark.slow

RNG = np.random.default_rng(32)
IMAGES = [RNG.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((224, 224), (256, 320), (180, 150))]


@pytest.fixture(scope="module")
def source():
    """open_clip's own random ViT-B-32-quickgelu (the model whose checkpoints we write)."""
    torch.manual_seed(32)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    return model


@pytest.fixture(scope="module")
def plain_pt(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("b32") / "RS5M_ViT-B-32.pt"
    torch.save(source.state_dict(), path)  # the GeoRSCLIP/RemoteCLIP format
    return path


@pytest.fixture(scope="module")
def source_embeddings(source):
    encoder = Encoder(
        source, open_clip.get_tokenizer("ViT-B-32"), get_model_spec("georsclip-vit-b-32"), torch.device("cpu")
    )
    return encoder.encode_images(IMAGES), encoder.encode_texts(["a satellite photo of an airport."])


def _same_tensors(model, source) -> bool:
    loaded, expected = model.state_dict(), source.state_dict()
    return loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)


def _activations(model) -> set[str]:
    return {type(m).__name__ for n, m in model.named_modules() if n.endswith(".gelu")}


def test_georsclip_by_name_from_the_hf_cache(source, plain_pt, source_embeddings, hf_cache_placer):
    hf_cache_placer(
        __import__("pathlib").Path(os.environ["HF_HUB_CACHE"]),
        "Zilun/GeoRSCLIP",
        "ckpt/RS5M_ViT-B-32.pt",
        plain_pt,
    )
    encoder = load_encoder("georsclip-vit-b-32")
    assert encoder.weights.name == "RS5M_ViT-B-32.pt"
    assert _activations(encoder.model) == {"QuickGELU"}
    assert _same_tensors(encoder.model, source)
    images, texts = source_embeddings
    assert np.array_equal(encoder.encode_images(IMAGES), images)
    assert np.array_equal(encoder.encode_texts(["a satellite photo of an airport."]), texts)
    # and the open_clip reference pipeline (PIL eval transform + encode_image) agrees
    transform = open_clip.image_transform(224, is_train=False)
    with torch.no_grad():
        pixels = torch.stack([transform(Image.fromarray(image)) for image in IMAGES])
        direct = torch.nn.functional.normalize(source.encode_image(pixels), dim=-1).numpy()
    np.testing.assert_allclose(images, direct, atol=2e-6)


def test_skyclip_training_checkpoint_and_quickgelu_override(source, source_embeddings, tmp_path, monkeypatch):
    # SkyCLIP B-32 is LAION-based (GELU); write our QuickGELU source in its training-checkpoint format
    target = tmp_path / "cache" / "weights" / "skyclip-vit-b-32" / "epoch_20.pt"
    target.parent.mkdir(parents=True)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"epoch": 20, "name": "SkyCLIP_ViT_B32_top50pct", "state_dict": state}, target)
    monkeypatch.setenv("GEO_DFM_CACHE", str(tmp_path / "cache"))
    forced = load_encoder("skyclip-vit-b-32", quick_gelu=True)
    assert forced.architecture == "ViT-B-32-quickgelu"
    assert _activations(forced.model) == {"QuickGELU"}
    assert _same_tensors(forced.model, source)
    assert np.array_equal(forced.encode_images(IMAGES), source_embeddings[0])


def test_safetensors_with_architecture_name(source, source_embeddings, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    encoder = load_encoder("ViT-B-32-quickgelu", weights=str(path), threads=1)
    assert _same_tensors(encoder.model, source)
    assert np.array_equal(encoder.encode_images(IMAGES, batch_size=2), source_embeddings[0])
