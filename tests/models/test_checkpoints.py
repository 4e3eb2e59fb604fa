"""Checkpoint formats of the published models, written from a random tiny CLIP, load exactly and safely."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from geo_dfm.errors import InputError
from geo_dfm.models.checkpoints import read_checkpoint
from geo_dfm.models.encoder import Encoder
from geo_dfm.models.factory import instantiate, load_encoder
from geo_dfm.models.registry import get_model_spec

RNG = np.random.default_rng(5)
IMAGES = [RNG.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((224, 224), (300, 257), (120, 160))]
TEXTS = ["an aerial image of a runway.", "a satellite image of the forest."]


def _state(model) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def _reference_encoder(model) -> Encoder:
    import open_clip

    spec = get_model_spec("georsclip-vit-b-32")  # only mean/std/templates are used
    return Encoder(model, open_clip.get_tokenizer("ViT-B-32"), spec, torch.device("cpu"), input_size=224)


def _write(kind: str, model, folder: pathlib.Path) -> pathlib.Path:
    state = _state(model)
    if kind == "plain-pt":  # GeoRSCLIP / RemoteCLIP: CLIP.state_dict() pickled with torch.save
        path = folder / "RS5M_tiny.pt"
        torch.save(state, path)
    elif kind == "training-pt":  # SkyCLIP: open_clip training checkpoint, DDP 'module.' prefix
        path = folder / "epoch_20.pt"
        wrapped = {f"module.{key}": value for key, value in state.items()}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6).state_dict()
        torch.save({"epoch": 20, "name": "SkyCLIP_tiny", "state_dict": wrapped, "optimizer": optimizer}, path)
    elif kind == "legacy-pth":  # torch's old non-zip serialisation
        path = folder / "weights.pth"
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:
        path = folder / "weights.safetensors"
        save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    return path


@pytest.mark.parametrize("kind", ["plain-pt", "training-pt", "legacy-pth", "safetensors"])
def test_each_format_loads_exactly_by_config_and_weights(kind, tiny_model, tiny_config_path, tmp_path):
    path = _write(kind, tiny_model, tmp_path)
    encoder = load_encoder(model_config=str(tiny_config_path), weights=str(path), device="cpu")
    loaded = encoder.model.state_dict()
    source = tiny_model.state_dict()
    assert loaded.keys() == source.keys()
    assert all(torch.equal(loaded[key], source[key]) for key in source)
    reference = _reference_encoder(tiny_model)
    assert np.array_equal(encoder.encode_images(IMAGES), reference.encode_images(IMAGES))
    assert np.array_equal(encoder.encode_texts(TEXTS), reference.encode_texts(TEXTS))
    assert _activation(encoder.model) == "QuickGELU"  # the config's quick_gelu is honoured


def _activation(model) -> str:
    (name,) = {type(m).__name__ for n, m in model.named_modules() if n.endswith(".gelu")}
    return name


def test_meta_build_equals_a_normal_build_including_buffers(tiny_model):
    state = _state(tiny_model)
    fast = instantiate(_tiny_arch(), state, "test")
    assert not any(t.is_meta for t in (*fast.parameters(), *fast.buffers()))
    normal_buffers = dict(tiny_model.named_buffers())
    for name, buffer in fast.named_buffers():
        assert torch.equal(buffer, normal_buffers[name]), name


def _tiny_arch() -> str:
    import open_clip

    return next(name for name in open_clip.list_models() if name.startswith("custom-tiny-rs-"))


def test_architecture_name_plus_weights(tiny_model, tmp_path):
    path = _write("plain-pt", tiny_model, tmp_path)
    encoder = load_encoder(_tiny_arch(), weights=str(path))
    assert encoder.architecture == _tiny_arch()
    assert np.array_equal(encoder.encode_texts(TEXTS), _reference_encoder(tiny_model).encode_texts(TEXTS))


def test_a_pickled_callable_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    torch.save({"visual.proj": torch.zeros(2), "extra": Payload()}, path)
    with pytest.raises(
        InputError, match=r"refused: the checkpoint contains pickled Python objects \(\S+\), not only tensors"
    ):
        read_checkpoint(path)
    assert not marker.exists()
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": print}, tmp_path / "fn.pt")
    with pytest.raises(InputError, match="refused"):
        read_checkpoint(tmp_path / "fn.pt")


def test_wrong_architecture_lists_the_mismatched_keys(tiny_model, tmp_path, tiny_config, config_writer):
    deeper = tiny_config
    deeper["vision_cfg"]["layers"] = 3
    deeper["text_cfg"]["width"] = 48
    config = config_writer(tmp_path, "deeper", deeper)
    path = _write("plain-pt", tiny_model, tmp_path)
    with pytest.raises(InputError) as info:
        load_encoder(model_config=str(config), weights=str(path))
    message = str(info.value)
    assert str(path) in message
    assert "missing keys: visual.transformer.resblocks.2.ln_1.weight" in message
    assert (
        "keys with other shapes" in message
        and "transformer.resblocks.0.ln_1.weight (32,) vs model (48,)" in message
    )


def test_unexpected_keys_are_listed(tiny_model, tmp_path):
    state = _state(tiny_model)
    state["visual.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pt"
    torch.save(state, path)
    with pytest.raises(InputError, match=r"1 unexpected keys: visual\.extra_head\.weight"):
        load_encoder(_tiny_arch(), weights=str(path))


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"not a checkpoint at all", "not a PyTorch checkpoint"), (b"", "not a PyTorch checkpoint")],
)
def test_garbage_files_are_input_errors(tmp_path, content, problem):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=problem):
        read_checkpoint(path)
    bad_st = tmp_path / "weights.safetensors"
    bad_st.write_bytes(content)
    with pytest.raises(InputError, match="safetensors"):
        read_checkpoint(bad_st)


def test_non_tensor_entries_and_missing_files(tmp_path, tiny_config_path, config_writer):
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(InputError, match="non-tensor entries epoch, lr"):
        read_checkpoint(path)
    with pytest.raises(InputError, match="weights file not found"):
        load_encoder(model_config=str(tiny_config_path), weights=str(tmp_path / "nope.pt"))
    with pytest.raises(InputError, match="needs its checkpoint"):
        load_encoder(model_config=str(tiny_config_path))
    with pytest.raises(InputError, match="not an open_clip model config"):
        bad = config_writer(tmp_path, "bad", {"embed_dim": 3})
        load_encoder(model_config=str(bad), weights=str(path))


def test_open_clip_architecture_without_weights_and_unknown_names():
    with pytest.raises(InputError, match="--weights PATH"):
        load_encoder("ViT-B-32")
    with pytest.raises(InputError, match="georsclip-vit-b-32"):
        load_encoder("georsclip-vit-b32")


def test_hf_style_config_with_preprocess_cfg(tiny_model, tmp_path, tiny_config, config_writer):
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    config = config_writer(
        tmp_path, "hfstyle", {"model_cfg": tiny_config, "preprocess_cfg": {"mean": mean, "std": std}}
    )
    encoder = load_encoder(model_config=str(config), weights=str(_write("safetensors", tiny_model, tmp_path)))
    assert encoder.mean == tuple(mean) and encoder.std == tuple(std)
    pixels = encoder.preprocess([np.full((224, 224, 3), 191, np.uint8)])
    assert torch.allclose(pixels, torch.full_like(pixels, (191 / 255 - 0.5) / 0.25))
