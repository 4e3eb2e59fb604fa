"""Attention with explicit q/k/v/out linear layers, so that adapters (LoRA, LoHa, OFT, IA³) can target them.

open_clip's ViT and text blocks use ``nn.MultiheadAttention``, whose fused ``in_proj_weight`` is used
directly inside ``F.multi_head_attention_forward``: a peft layer wrapped around it must merge and
unmerge its update on every forward, and wrapping ``out_proj`` alone gives it no gradient.
:class:`SplitAttention` computes the same function from four ``nn.Linear`` layers (the CLIP-LoRA
approach), so every adapter is an ordinary ``Linear`` adapter. :func:`split_attention` swaps the
modules in place (before wrapping), :func:`fuse_attention` folds them back into
``nn.MultiheadAttention`` (after merging), so saved weights keep open_clip's key names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SplitAttention(nn.Module):
    """Multi-head attention as ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` linear layers.

    A drop-in replacement for ``nn.MultiheadAttention`` with equal embedding sizes for query, key and
    value: same call (``attn(q, k, v, need_weights=False, attn_mask=...)``), same ``batch_first``
    convention, same float or boolean ``attn_mask`` and ``key_padding_mask`` semantics (True = masked).
    Returns ``(output, None)``; attention weights are never computed.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.batch_first, self.dropout = batch_first, dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    @staticmethod
    def supports(module: nn.Module) -> bool:
        """True for an ``nn.MultiheadAttention`` this class can replace exactly."""
        return (
            isinstance(module, nn.MultiheadAttention)
            and module._qkv_same_embed_dim
            and module.bias_k is None
            and module.bias_v is None
            and not module.add_zero_attn
        )

    @classmethod
    def from_mha(cls, mha: nn.MultiheadAttention) -> SplitAttention:
        """The same attention with ``mha``'s weights split into four linear layers (tensors copied)."""
        if not cls.supports(mha):
            raise ValueError("only self-attention without bias_k/bias_v/add_zero_attn can be split")
        bias = mha.in_proj_bias is not None
        weight = mha.in_proj_weight
        split = cls(mha.embed_dim, mha.num_heads, bias=bias, batch_first=mha.batch_first, dropout=mha.dropout)
        split.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for index, layer in enumerate((split.q_proj, split.k_proj, split.v_proj)):
                rows = slice(index * mha.embed_dim, (index + 1) * mha.embed_dim)
                layer.weight.copy_(weight[rows])
                if bias:
                    layer.bias.copy_(mha.in_proj_bias[rows])
            split.out_proj.weight.copy_(mha.out_proj.weight)
            if bias:
                split.out_proj.bias.copy_(mha.out_proj.bias)
        split.train(mha.training)
        return split

    def to_mha(self) -> nn.MultiheadAttention:
        """An ``nn.MultiheadAttention`` holding this module's (merged) weights."""
        layers = (self.q_proj, self.k_proj, self.v_proj)
        for layer in (*layers, self.out_proj):
            if type(layer) is not nn.Linear:
                raise ValueError(f"cannot fuse {type(layer).__name__}: merge the adapter first")
        bias = self.q_proj.bias is not None
        weight = self.q_proj.weight
        mha = nn.MultiheadAttention(
            self.embed_dim, self.num_heads, dropout=self.dropout, bias=bias, batch_first=self.batch_first
        ).to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([layer.weight for layer in layers]))
            mha.out_proj.weight.copy_(self.out_proj.weight)
            if bias:
                mha.in_proj_bias.copy_(torch.cat([layer.bias for layer in layers]))
                mha.out_proj.bias.copy_(self.out_proj.bias)
        mha.train(self.training)
        return mha

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, None]:
        """(output, None); inputs (N, L, E) with ``batch_first``, else (L, N, E)."""
        if need_weights:
            raise ValueError(
                "SplitAttention does not return attention weights (call with need_weights=False)"
            )
        key = query if key is None else key
        value = key if value is None else value
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        batch, target, _ = query.shape
        source = key.shape[1]
        q = self._heads(self.q_proj(query), batch, target)
        k = self._heads(self.k_proj(key), batch, source)
        v = self._heads(self.v_proj(value), batch, source)
        mask = self._additive_mask(attn_mask, key_padding_mask, batch, target, source, q.dtype)
        causal = is_causal and mask is None
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=causal
        )
        out = self.out_proj(out.transpose(1, 2).reshape(batch, target, self.embed_dim))
        return (out if self.batch_first else out.transpose(0, 1)), None

    def _heads(self, x: torch.Tensor, batch: int, length: int) -> torch.Tensor:
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def _additive_mask(
        self,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        batch: int,
        target: int,
        source: int,
        dtype: torch.dtype,
    ) -> torch.Tensor | None:
        """One float mask broadcastable to (N, heads, L, S), as ``nn.MultiheadAttention`` merges them."""
        mask = None
        if attn_mask is not None:
            mask = _as_float_mask(attn_mask, dtype)
            mask = mask.view(batch, self.num_heads, target, source) if mask.dim() == 3 else mask
        if key_padding_mask is not None:
            padding = _as_float_mask(key_padding_mask, dtype).view(batch, 1, 1, source)
            mask = padding if mask is None else mask + padding
        return mask


def _as_float_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))
    return mask.to(dtype)


def split_attention(model: nn.Module) -> int:
    """Replace every replaceable ``nn.MultiheadAttention`` of ``model`` by a :class:`SplitAttention`
    (in place); returns how many were replaced."""
    return _swap(model, lambda m: SplitAttention.supports(m), SplitAttention.from_mha)


def fuse_attention(model: nn.Module) -> int:
    """Fold every :class:`SplitAttention` of ``model`` back into ``nn.MultiheadAttention`` (in place)."""
    return _swap(model, lambda m: isinstance(m, SplitAttention), lambda m: m.to_mha())


def has_split_attention(model: nn.Module) -> bool:
    """True when ``model`` holds at least one :class:`SplitAttention`."""
    return any(isinstance(module, SplitAttention) for module in model.modules())


def _swap(model: nn.Module, wanted, convert) -> int:
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if wanted(child)
    ]
    for parent, name, child in targets:
        setattr(parent, name, convert(child))
    return len(targets)
