"""SplitAttention computes what nn.MultiheadAttention computes, and folds back into it exactly."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from torch import nn

from geo_dfm.training.attention import SplitAttention, fuse_attention, split_attention


@pytest.mark.parametrize("batch_first", [True, False])
def test_split_attention_equals_multihead_attention_with_every_mask(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=batch_first).train()
    split = SplitAttention.from_mha(mha)
    x = torch.randn(3, 7, 32) if batch_first else torch.randn(7, 3, 32)
    causal = torch.full((7, 7), float("-inf")).triu(1)
    boolean = torch.rand(7, 7) > 0.7
    boolean.fill_diagonal_(False)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = True
    for kwargs in ({}, {"attn_mask": causal}, {"attn_mask": boolean}, {"key_padding_mask": padding}):
        expected = mha(x, x, x, need_weights=False, **kwargs)[0]
        got = split(x, x, x, need_weights=False, **kwargs)[0]
        assert (got - expected).abs().max() <= 1e-5, kwargs


def test_converted_open_clip_towers_give_the_same_embeddings(tiny_clip):
    model = tiny_clip().eval()
    converted = copy.deepcopy(model)
    assert split_attention(converted) == 2  # one block per tower
    images = torch.randn(4, 3, 32, 32)
    tokens = open_clip.get_tokenizer("ViT-B-32", context_length=16)(
        ["a lake", "dense forest seen from above"]
    )
    with torch.no_grad():
        assert (converted.encode_image(images) - model.encode_image(images)).abs().max() <= 1e-5
        assert (converted.encode_text(tokens) - model.encode_text(tokens)).abs().max() <= 1e-5
    fuse_attention(converted)
    original, folded = model.state_dict(), converted.state_dict()
    assert set(folded) == set(original)
    assert all(torch.equal(folded[k], original[k]) for k in original)


def test_attention_weights_are_refused():
    split = SplitAttention(16, 2)
    x = torch.randn(5, 2, 16)
    with pytest.raises(ValueError, match="need_weights"):
        split(x, x, x, need_weights=True)
