"""Fine-tuning methods: which parameters of an open_clip CLIP train, and how adapters are injected.

- ``lora``, ``loha``, ``oft`` — peft adapters on every attention projection (q, k, v, out) and MLP
  layer (``c_fc``, ``c_proj``) of the chosen towers' transformer blocks;
- ``ia3`` — peft IA³ scaling vectors on keys, values and the MLP's down-projection input;
- ``full`` — every parameter; ``frozen-text`` — the image tower only (text tower frozen);
  ``frozen-image`` — the text tower only (image tower frozen).

Before an adapter is injected, each ``nn.MultiheadAttention`` is replaced by the equivalent
:class:`geo_dfm.training.attention.SplitAttention` (explicit q/k/v/out linears), so every adapter
wraps a plain ``nn.Linear``: no merging inside the forward, and every adapter weight gets a gradient.
The temperature (``logit_scale``) is learnable with every method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from geo_dfm.training.attention import split_attention
from geo_dfm.training.method_options import (
    ADAPTER_METHODS,
    METHODS,
    TOWERS,
    MethodOptions,
    check_method,
    check_options,
)
from tile_tools.errors import InputError

_TOWER_PREFIX = {"both": r"(visual\.)?transformer", "image": r"visual\.transformer", "text": r"transformer"}
_ALL_LINEARS = r"(attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(c_fc|c_proj))"

__all__ = [
    "ADAPTER_METHODS",
    "METHODS",
    "TOWERS",
    "MethodOptions",
    "PreparedModel",
    "check_method",
    "check_options",
    "count_parameters",
    "prepare_model",
    "target_modules",
]


@dataclass(frozen=True, eq=False)
class PreparedModel:
    """A model ready for :func:`geo_dfm.training.train_contrastive`: ``model`` (a peft model for adapter
    methods), the method, and parameter counts (``base_parameters``: the original model's)."""

    model: nn.Module
    method: str
    options: MethodOptions
    trainable_parameters: int
    base_parameters: int
    target_modules: str | None

    @property
    def is_adapter(self) -> bool:
        return self.method in ADAPTER_METHODS

    @property
    def trainable_share(self) -> float:
        """Trainable parameters as a fraction of the base model's."""
        return self.trainable_parameters / max(1, self.base_parameters)


def target_modules(method: str, towers: str = "both") -> tuple[str, str | None]:
    """peft ``target_modules`` regex (full match on module names) and, for IA³, ``feedforward_modules``."""
    blocks = rf"{_TOWER_PREFIX[towers]}\.resblocks\.\d+\."
    if method == "ia3":
        return rf"{blocks}(attn\.(k_proj|v_proj)|mlp\.c_proj)", rf"{blocks}mlp\.c_proj"
    return rf"{blocks}{_ALL_LINEARS}", None


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def prepare_model(
    model: nn.Module, method: str, options: MethodOptions = MethodOptions(), seed: int = 0
) -> PreparedModel:
    """Make ``model`` (an open_clip CLIP, changed in place) trainable by ``method``.

    Adapter weights are initialised from ``seed`` (the global torch generator is left as it was).
    """
    method = check_method(method)
    options = check_options(options)
    base_parameters = sum(p.numel() for p in model.parameters())
    targets = None
    if method in ADAPTER_METHODS:
        split_attention(model)
        targets, feedforward = target_modules(method, options.towers)
        config = _peft_config(method, options, targets, feedforward)
        _check_oft_widths(model, method, options, targets)
        import peft

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = peft.get_peft_model(model, config)
    else:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(_trains(method, name))
    model.logit_scale.requires_grad_(True)
    trainable, _ = count_parameters(model)
    return PreparedModel(model, method, options, trainable, base_parameters, targets)


def _trains(method: str, name: str) -> bool:
    if method == "full" or name == "logit_scale":
        return True
    image = name.startswith("visual.")
    return image if method == "frozen-text" else not image


def _peft_config(method: str, options: MethodOptions, targets: str, feedforward: str | None):
    import peft

    if method == "lora":
        return peft.LoraConfig(
            r=options.rank,
            lora_alpha=options.scaling_alpha,
            lora_dropout=options.dropout,
            target_modules=targets,
        )
    if method == "loha":
        return peft.LoHaConfig(
            r=options.rank, alpha=options.scaling_alpha, rank_dropout=options.dropout, target_modules=targets
        )
    if method == "oft":
        return peft.OFTConfig(r=0, oft_block_size=options.oft_block_size, target_modules=targets)
    return peft.IA3Config(target_modules=targets, feedforward_modules=feedforward)


def _check_oft_widths(model: nn.Module, method: str, options: MethodOptions, targets: str) -> None:
    if method != "oft":
        return
    import re

    pattern = re.compile(targets)
    for name, module in model.named_modules():
        if (
            pattern.fullmatch(name)
            and isinstance(module, nn.Linear)
            and module.in_features % options.oft_block_size
        ):
            raise InputError(
                "oft_block_size",
                f"{options.oft_block_size} does not divide the input width {module.in_features} of {name}",
            )
