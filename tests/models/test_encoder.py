"""The Encoder: reference preprocessing, prompt ensembles, text cache, batching, devices, caching."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from geo_dfm.errors import InputError
from geo_dfm.models.device import resolve_device, resolve_precision
from geo_dfm.models.encoder import Encoder
from geo_dfm.models.factory import load_encoder
from geo_dfm.models.prompts import get_templates
from geo_dfm.models.registry import get_model_spec

RNG = np.random.default_rng(11)
SHAPES = [
    (224, 224),
    (225, 224),
    (300, 257),
    (257, 300),
    (120, 160),
    (100, 99),
    (224, 513),
    (37, 50),
    (513, 513),
]


@pytest.fixture
def encoder(tiny_model, tiny_config_path, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_model.state_dict(), path)
    return load_encoder(model_config=str(tiny_config_path), weights=str(path))


@pytest.mark.parametrize("size", [224, 336])
def test_preprocessing_equals_open_clip_eval_transform_on_pil(encoder, size):
    images = [RNG.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in SHAPES]
    sized = Encoder(encoder.model, encoder.tokenizer, encoder.spec, torch.device("cpu"), input_size=size)
    reference = open_clip.image_transform(size, is_train=False, mean=sized.mean, std=sized.std)
    expected = torch.stack([reference(Image.fromarray(image)) for image in images])
    got = sized.preprocess(images)
    assert got.shape == (len(images), 3, size, size) and got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_prompt_ensemble_equals_a_direct_open_clip_computation(encoder, tiny_model):
    labels = ["Bare Land", "baseball_diamond", "AnnualCrop"]
    templates = get_templates("rs105")
    tokenizer = open_clip.get_tokenizer(encoder.architecture)
    expected = []
    with torch.no_grad():
        for name in ("bare land", "baseball diamond", "annualcrop"):
            features = tiny_model.encode_text(tokenizer([t.format(name) for t in templates]))
            mean = features.mean(dim=0)
            expected.append(mean / mean.norm())
    got = encoder.class_embeddings(labels, "rs105")
    assert got.shape == (3, encoder.embed_dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, torch.stack(expected).numpy(), atol=1e-6)
    # the mean is of un-normalised embeddings: differs from averaging normalised ones
    normalised = encoder.encode_texts([t.format("bare land") for t in templates]).mean(axis=0)
    assert not np.allclose(got[0], normalised / np.linalg.norm(normalised), atol=1e-7)
    # default templates: the model's recommended set
    np.testing.assert_array_equal(encoder.class_embeddings(labels), got)


def test_text_cache_avoids_recomputing(encoder, monkeypatch):
    first = encoder.encode_texts(["a pond", "a river", "a pond"])
    assert np.array_equal(first[0], first[2])
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    calls = []
    original = encoder._encode_new_texts
    monkeypatch.setattr(
        encoder, "_encode_new_texts", lambda texts: calls.append(list(texts)) or original(texts)
    )
    again = encoder.encode_texts(["a river", "a lake"])
    assert calls == [["a lake"]]
    assert np.array_equal(again[0], first[1])


def test_batching_and_validation(encoder):
    images = [RNG.integers(0, 256, (64 + i, 80, 3), dtype=np.uint8) for i in range(5)]
    whole = encoder.encode_images(images, batch_size=5)
    np.testing.assert_allclose(encoder.encode_images(iter(images), batch_size=2), whole, atol=1e-6)
    assert whole.shape == (5, encoder.embed_dim) and whole.dtype == np.float32
    assert encoder.encode_images([]).shape == (0, encoder.embed_dim)
    with pytest.raises(InputError, match="image 1 must be an H×W×3 uint8"):
        encoder.encode_images([images[0], np.zeros((10, 10), np.uint8)])
    with pytest.raises(InputError, match="uint8"):
        encoder.encode_images([np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(InputError, match="no class labels"):
        encoder.class_embeddings([], "none")


def test_loaded_encoders_are_cached_per_arguments(encoder, tiny_model, tiny_config_path, tmp_path):
    path = encoder.weights
    assert (
        load_encoder(model_config=str(tiny_config_path), weights=str(path), device="cpu", threads=1)
        is encoder
    )
    other = tmp_path / "copy.pt"
    torch.save(tiny_model.state_dict(), other)
    assert load_encoder(model_config=str(tiny_config_path), weights=str(other)) is not encoder
    assert encoder.describe()["device"] == "cpu" and encoder.precision == "fp32"


@pytest.mark.parametrize(
    "cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_device_follows_what_the_machine_has(monkeypatch, cuda, mps, expected):
    """``auto`` picks CUDA, then MPS, then CPU: the availability checks are faked, so every branch runs
    on any machine (a real CUDA device is not needed to see that ``auto`` would choose it)."""
    from geo_dfm.models import device as device_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(device_module, "_mps_available", lambda: mps)
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("bf16, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_precision_on_a_gpu_follows_its_bf16_support(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert resolve_precision("auto", torch.device("cuda")) == expected
    assert resolve_precision("auto", torch.device("mps")) is None


def test_device_and_precision_choices(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("fp16", torch.device("cuda")) == torch.float16
    with pytest.raises(InputError, match="needs a GPU"):
        resolve_precision("bf16", torch.device("cpu"))
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda:0")


def test_encoder_describes_itself(encoder):
    info = encoder.describe()
    assert info["architecture"].startswith("custom-tiny-rs-") and info["input_size"] == 224
    assert info["weights"].endswith("tiny.pt") and info["embed_dim"] == 32
    assert get_model_spec("toy").templates == "rs105"


def test_toy_entry_loads_the_file_ensure_toy_model_gives(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    import geo_dfm.synthetic
    from geo_dfm.models.factory import build_model

    torch.manual_seed(4)
    toy = build_model("geo-dfm-toy").eval()
    path = tmp_path / "toy.safetensors"
    save_file({k: v.contiguous() for k, v in toy.state_dict().items()}, str(path))
    monkeypatch.setattr(geo_dfm.synthetic, "ensure_toy_model", lambda *a, **k: path)  # no minute of training
    encoder = load_encoder("toy")
    assert (
        encoder.name == "toy" and encoder.weights == path and encoder.input_size == toy.visual.image_size[0]
    )
    image = RNG.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(toy.encode_image(encoder.preprocess([image])), dim=-1)
    assert np.array_equal(encoder.encode_images([image]), expected.numpy())
