"""A tiny random Stable Diffusion pipeline in GeoRSSD's published folder layout, and a Hugging Face
cache that holds it where ``georssd-20p`` is published.

The layout is the one of ``Zilun/GeoRSSD/checkpoint/<share>/<step>/``: ``model_index.json``
(StableDiffusionPipeline, DDIM, no safety checker), ``unet/`` and ``vae/`` (config +
``diffusion_pytorch_model.bin``, as diffusers 0.15 saved them), ``text_encoder/``
(``pytorch_model.bin``), ``tokenizer/``
(CLIP BPE files: ``vocab.json``, ``merges.txt``, ``tokenizer_config.json``,
``special_tokens_map.json``), ``scheduler/``, ``feature_extractor/`` and ``args.json``. The tokenizer
is made here, offline: a byte-level vocabulary (every byte, alone and word-final) without merges.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SPECIAL = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_tokenizer(folder: Path) -> int:
    """CLIP tokenizer files with a byte-level vocabulary; returns the vocabulary size."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": len(symbols) + i for i, symbol in enumerate(symbols)})
    vocab[SPECIAL["bos_token"]] = len(vocab)
    vocab[SPECIAL["eos_token"]] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    special = {**SPECIAL, "unk_token": SPECIAL["eos_token"], "pad_token": SPECIAL["eos_token"]}
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return len(vocab)


def build_tiny_pipeline(folder: Path) -> Path:
    """Save a random tiny StableDiffusionPipeline (VAE factor 8, a few thousand weights) to ``folder``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer_dir = folder.parent / f".{folder.name}-tokenizer"
    vocab_size = write_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    eos = tokenizer.convert_tokens_to_ids(SPECIAL["eos_token"])
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            projection_dim=16,
            max_position_embeddings=77,
            bos_token_id=tokenizer.convert_tokens_to_ids(SPECIAL["bos_token"]),
            eos_token_id=eos,
            pad_token_id=eos,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=CLIPImageProcessor(),
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=False)
    # transformers 5 writes only safetensors; the published text encoders are pytorch_model.bin
    (folder / "text_encoder" / "model.safetensors").unlink()
    torch.save(text_encoder.state_dict(), folder / "text_encoder" / "pytorch_model.bin")
    shutil.rmtree(folder / "tokenizer")  # the published folders carry the BPE files, not tokenizer.json
    shutil.copytree(tokenizer_dir, folder / "tokenizer")
    shutil.rmtree(tokenizer_dir)
    (folder / "args.json").write_text(json.dumps({"resolution": 64, "note": "test pipeline"}), "utf-8")
    return folder


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Tests run generation with ``--threads 1`` (tiny convolutions on a shared CPU are ~10× faster);
    torch's process-wide thread count is restored for the tests that follow."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """A local pipeline folder (what ``--weights FOLDER`` takes)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "22000")


@pytest.fixture
def georssd_cache(tmp_path, tiny_pipeline, monkeypatch) -> Path:
    """``HF_HUB_CACHE`` holding the tiny pipeline as ``Zilun/GeoRSSD`` ``checkpoint/20p/22000``."""
    cache = tmp_path / "hf-cache"
    repo = cache / "models--Zilun--GeoRSSD"
    shutil.copytree(tiny_pipeline, repo / "snapshots" / FAKE_COMMIT / "checkpoint" / "20p" / "22000")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(FAKE_COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline."""
    cache = tmp_path / "empty-hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache
