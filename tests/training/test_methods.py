"""Every fine-tuning method: what trains, its parameter count, gradients, and LoRA's exact update."""

from __future__ import annotations

import open_clip
import peft
import pytest
import torch

from geo_dfm.training.loss import contrastive_loss
from geo_dfm.training.methods import (
    ADAPTER_METHODS,
    METHODS,
    MethodOptions,
    check_method,
    prepare_model,
)
from tile_tools.errors import InputError

OPTIONS = MethodOptions(rank=4, oft_block_size=8)


def _step(model, images, tokens):
    loss = contrastive_loss(
        model.encode_image(images, normalize=True),
        model.encode_text(tokens, normalize=True),
        model.logit_scale.exp(),
    )
    loss.backward()


@pytest.mark.parametrize("method", METHODS)
def test_every_trainable_parameter_gets_a_gradient_and_is_counted(tiny_clip, method):
    prepared = prepare_model(tiny_clip(), method, OPTIONS, seed=0)
    model = prepared.model.train()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert prepared.trainable_parameters == sum(p.numel() for p in trainable.values()) > 0
    assert prepared.base_parameters == sum(p.numel() for p in tiny_clip().parameters())
    images = torch.randn(6, 3, 32, 32)
    tokens = open_clip.get_tokenizer("ViT-B-32", context_length=16)([f"caption number {i}" for i in range(6)])
    optimizer = torch.optim.SGD(list(trainable.values()), lr=0.5)
    # LoRA/LoHa/OFT start as the identity (one factor zero): a first step moves it, the second
    # step then reaches every factor
    for _ in range(2):
        optimizer.zero_grad()
        _step(model, images, tokens)
        optimizer.step()
    silent = [n for n, p in trainable.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not silent, silent
    assert "logit_scale" in {n.rsplit(".", 1)[-1] for n in trainable}
    if method in ADAPTER_METHODS:
        marker = {"lora": "lora_", "loha": "hada_", "ia3": "ia3_", "oft": "oft_"}[method]
        assert all(n.endswith("logit_scale") or marker in n for n in trainable), sorted(trainable)
        assert prepared.trainable_share < 0.2
    if method == "frozen-text":
        assert all(n.startswith("visual.") or n == "logit_scale" for n in trainable)
    if method == "frozen-image":
        assert not any(n.startswith("visual.") for n in trainable)


def test_lora_on_split_attention_is_w_plus_scaled_ba(tiny_clip):
    """A LoRA with known A and B on a q projection: the layer computes x (W + (α/r) B A)ᵀ + b."""
    options = MethodOptions(rank=2, alpha=6.0)
    model = prepare_model(tiny_clip(), "lora", options, seed=0).model
    layer = model.base_model.model.visual.transformer.resblocks[0].attn.q_proj
    torch.manual_seed(1)
    a, b = 0.1 * torch.randn(2, 32), 0.1 * torch.randn(32, 2)
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(a)
        layer.lora_B["default"].weight.copy_(b)
    weight, bias = layer.base_layer.weight.detach().clone(), layer.base_layer.bias.detach().clone()
    x = torch.randn(5, 32)
    by_hand = (x.double() @ (weight.double() + (6.0 / 2) * b.double() @ a.double()).T + bias.double()).float()
    with torch.no_grad():
        assert (layer(x) - by_hand).abs().max() <= 1e-5
        merged = model.merge_and_unload().visual.transformer.resblocks[0].attn.q_proj
    assert (merged.weight - (weight + 3.0 * b @ a)).abs().max() <= 1e-5
    assert torch.equal(merged.bias, bias)


def test_unknown_method_and_bad_options_are_input_errors(tiny_clip):
    with pytest.raises(InputError, match="unknown fine-tuning method 'prefix'"):
        check_method("prefix")
    with pytest.raises(InputError, match="oft_block_size"):
        prepare_model(tiny_clip(), "oft", MethodOptions(oft_block_size=7))
    with pytest.raises(InputError, match="towers"):
        prepare_model(tiny_clip(), "lora", MethodOptions(towers="audio"))


def test_adapter_initialisation_is_seeded_and_leaves_the_global_generator_alone(tiny_clip):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = prepare_model(tiny_clip(), "lora", OPTIONS, seed=5).model
    torch.set_rng_state(state)
    second = prepare_model(tiny_clip(), "lora", OPTIONS, seed=5).model
    a = {n: p for n, p in first.named_parameters() if "lora_A" in n}
    b = dict(second.named_parameters())
    assert a and all(torch.equal(p, b[n]) for n, p in a.items())
    assert isinstance(first, peft.PeftModel)
