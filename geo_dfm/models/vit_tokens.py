"""The token stream of an open_clip vision transformer, up to (not through) its last block.

Dense heads (:mod:`geo_dfm.models.dense`) replace only the last residual block; everything before
it is open_clip's own modules, called as they are (nothing of the model is modified, so the
encoder's ordinary ``encode_image`` stays what it was). Inputs larger (or smaller) than the model's
training size get a bicubically interpolated positional embedding, as the dense-CLIP papers do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from geo_dfm.errors import InputError


@dataclass(frozen=True, eq=False)
class VitTokens:
    """Tokens entering the last block: ``tokens`` (N, 1 + h·w, C) float32, CLS first, patches row-major."""

    tokens: torch.Tensor
    grid: tuple[int, int]
    """(h, w): the patch grid of the input."""


def dense_vision_tower(model: torch.nn.Module, source: str = "model") -> torch.nn.Module:
    """``model.visual`` when it is an open_clip ViT whose last block a dense head can rewrite.

    Supported: ``nn.MultiheadAttention`` blocks and open_clip's ``"block_type": "custom"`` blocks;
    refused (an :class:`InputError` naming ``source``): convolutional towers (RN50), attentional
    pooling (CoCa), timm towers, scaled cosine attention.
    """
    from open_clip.transformer import (
        CustomResidualAttentionBlock,
        ResidualAttentionBlock,
        VisionTransformer,
    )

    visual = getattr(model, "visual", None)
    if not isinstance(visual, VisionTransformer):
        kind = type(visual).__name__ if visual is not None else "no image tower"
        raise InputError(source, f"dense mode needs an open_clip ViT image tower, this model has {kind}")
    if visual.attn_pool is not None:
        raise InputError(source, "dense mode does not support attentional pooling (CoCa-style) towers")
    last = visual.transformer.resblocks[-1]
    if isinstance(last, ResidualAttentionBlock):
        if hasattr(last, "ln_1_kv") or not last.attn._qkv_same_embed_dim:
            raise InputError(source, "dense mode needs self-attention blocks with one in_proj_weight")
    elif not isinstance(last, CustomResidualAttentionBlock):
        raise InputError(source, f"dense mode does not know the block type {type(last).__name__}")
    elif last.attn.logit_scale is not None:  # open_clip itself cannot run these blocks (4-D bmm)
        raise InputError(source, "dense mode does not support scaled cosine attention blocks")
    return visual


def patch_grid(visual: torch.nn.Module, height: int, width: int) -> tuple[int, int]:
    """(h, w) patches of a ``height`` × ``width`` input; sizes must be multiples of the patch size."""
    ph, pw = visual.patch_size
    if height % ph or width % pw:
        raise ValueError(f"input {height}×{width} px is not a multiple of the {ph}×{pw} px patch")
    return height // ph, width // pw


def positional_embedding(visual: torch.nn.Module, grid: tuple[int, int]) -> torch.Tensor:
    """(1 + h·w, C) positional embedding for a patch grid: the model's own when the grid is its
    training grid, else its patch part resized bicubically (``align_corners=False``, antialiased when
    shrinking: what open_clip's ``resize_pos_embed`` does when it loads weights into a larger model),
    CLS row kept."""
    table = visual.positional_embedding
    if tuple(grid) == tuple(visual.grid_size):
        return table
    gh, gw = visual.grid_size
    cls, patches = table[:1], table[1:]
    image = patches.reshape(1, gh, gw, -1).permute(0, 3, 1, 2).float()
    resized = F.interpolate(image, size=tuple(grid), mode="bicubic", align_corners=False, antialias=True)
    resized = resized.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(table.dtype)
    return torch.cat([cls, resized], dim=0)


def tokens_before_last_block(visual: torch.nn.Module, pixels: torch.Tensor) -> VitTokens:
    """Run patch embedding, CLS token, (interpolated) positional embedding, ``ln_pre`` and every block
    but the last on normalised ``pixels`` (N, 3, H, W); returns the tokens as float32."""
    grid = patch_grid(visual, int(pixels.shape[-2]), int(pixels.shape[-1]))
    x = visual.conv1(pixels.to(visual.conv1.weight.dtype))
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (N, h·w, C)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + positional_embedding(visual, grid).to(x.dtype)
    x = visual.ln_pre(x)  # patch dropout is the identity in eval mode and is left out
    transformer = visual.transformer
    if not transformer.batch_first:
        x = x.transpose(0, 1)
    for block in transformer.resblocks[:-1]:
        x = block(x)
    if not transformer.batch_first:
        x = x.transpose(0, 1)
    return VitTokens(x.float(), grid)


def project_tokens(visual: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``ln_post`` then ``proj`` on every token (N, L, C) → (N, L, D) float32, L2-normalised."""
    x = visual.ln_post(tokens)
    if visual.proj is not None:
        x = x @ visual.proj.float()
    return F.normalize(x.float(), dim=-1)
