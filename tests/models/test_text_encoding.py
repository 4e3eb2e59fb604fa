"""Text encoding: trimmed token batches give open_clip's padded embeddings; class embeddings persist."""

from __future__ import annotations

import logging

import numpy as np
import open_clip
import pytest
import torch

from geo_dfm.models.factory import load_encoder
from geo_dfm.models.prompts import get_templates

PROMPTS = [
    "a",
    "water",
    "a satellite image of a small lake between fields",
    "an aerial image of the hard to see airport runway with many parked planes beside it",
    "a low resolution remote sensing image of a river",
]


@pytest.fixture
def encoder(tiny_model, tiny_config_path, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_model.state_dict(), path)
    return load_encoder(model_config=str(tiny_config_path), weights=str(path))


def test_trimmed_tokens_give_the_padded_embeddings(encoder, tiny_model):
    tokenizer = open_clip.get_tokenizer(encoder.architecture)
    with torch.no_grad():
        padded = tiny_model.encode_text(tokenizer(PROMPTS)).numpy()  # open_clip, 77 positions each
    got = encoder.encode_texts(PROMPTS, normalize=False)
    assert encoder._can_trim_tokens()
    assert np.abs(got - padded).max() <= 1e-5


def test_prompts_are_encoded_in_batches_cut_to_their_longest_prompt(encoder, monkeypatch):
    seen = []
    original = encoder._encode_tokens
    monkeypatch.setattr(
        encoder, "_encode_tokens", lambda tokens, length: seen.append(length) or original(tokens, length)
    )
    encoder.text_batch_size = 2
    encoder.encode_texts(PROMPTS)
    longest = max(len(open_clip.get_tokenizer(encoder.architecture).encode(p)) + 2 for p in PROMPTS)
    assert seen[0] == longest < 77  # sorted longest first, never the full context
    assert seen == sorted(seen, reverse=True) and len(seen) == 3


def test_a_second_run_with_the_same_labels_encodes_no_prompt(encoder, tiny_model, tiny_config_path):
    labels = ["water", "forest", "bare soil"]
    first = encoder.class_embeddings(labels, "rs105")
    assert encoder.text_tokens_encoded == len(labels) * len(get_templates("rs105"))
    from geo_dfm.models.factory import clear_encoder_cache

    clear_encoder_cache()  # a new process: nothing in memory, the disk cache answers
    again = load_encoder(model_config=str(tiny_config_path), weights=str(encoder.weights))
    assert again is not encoder
    np.testing.assert_array_equal(again.class_embeddings(labels, "rs105"), first)
    assert again.text_tokens_encoded == 0
    # other templates or labels are other entries
    again.class_embeddings(labels, "remoteclip")
    assert again.text_tokens_encoded == len(labels)


def test_a_text_longer_than_the_context_is_reported(encoder, caplog):
    caplog.set_level(logging.WARNING, logger="geo_dfm")
    encoder.encode_texts(["water " * 100])
    assert "longer than the model's 77-token context" in caplog.text
    caplog.clear()
    encoder.encode_texts(["water " * 20])
    assert "context" not in caplog.text
