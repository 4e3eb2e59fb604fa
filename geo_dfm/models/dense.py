"""Dense (patch-level) text-aligned features from an open_clip ViT, without training.

The training-free methods of ``docs/dense.md`` keep one forward pass and change only the **last**
residual block. With ``y = ln_1(x)``, per head ``q, k, v`` from ``in_proj_weight``/``in_proj_bias``,
``s = d^-0.5`` and ``branch(A) = out_proj(concat_heads(A @ v))`` (plus the block's own ``ls_1``):

========== ====================================================== ==================
variant    attention matrix A                                     block output
========== ====================================================== ==================
plain      softmax(s·q kᵀ)                                        the ordinary block
maskclip   identity (A @ v = v)                                   branch(A) alone
sclip      softmax(s·q qᵀ) + softmax(s·k kᵀ)                      branch(A) alone
clearclip  softmax(s·q qᵀ)                                        branch(A) alone
naclip     softmax(s·k kᵀ + ω), ω Gaussian over the patch grid    branch(A) alone
segearth   softmax(s·q qᵀ) + softmax(s·k kᵀ) + softmax(s·v vᵀ)    branch(A) alone
========== ====================================================== ==================

Every token then goes through ``ln_post`` and ``proj`` and is L2-normalised. The computation is
local to the call: it reads the model's weights and changes nothing, so the encoder keeps serving
ordinary chip embeddings. The same forward also yields the model's ordinary image embedding
(the CLS token through the unmodified block), used for SegEarth-OV's CLS subtraction and equal to
``encode_image`` at the model's input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from geo_dfm.errors import InputError
from geo_dfm.models.patch_head import DEFAULT_VARIANT, DENSE_VARIANTS, NACLIP_SIGMA, PatchHead
from geo_dfm.models.vit_tokens import (
    VitTokens,
    dense_vision_tower,
    project_tokens,
    tokens_before_last_block,
)

if TYPE_CHECKING:
    from geo_dfm.models.encoder import Encoder

__all__ = [
    "DEFAULT_VARIANT",
    "DENSE_VARIANTS",
    "NACLIP_SIGMA",
    "PatchFeatures",
    "PatchHead",
    "dense_input_size",
    "dense_pixels",
    "features_from_tokens",
    "last_block_tokens",
    "neighbourhood_prior",
    "patch_features",
    "vit_patch_features",
]


@dataclass(frozen=True, eq=False)
class PatchFeatures:
    """Text-aligned features of a batch of windows.

    ``patches`` (N, D, h, w) float32, L2-normalised along D: one feature per patch, row-major over
    the window (patch ``(i, j)`` covers the window's ``i``-th of ``h`` rows and ``j``-th of ``w``
    columns of equal size). ``image`` (N, D) float32, L2-normalised: the model's ordinary image
    embedding of the same input.
    """

    patches: np.ndarray
    image: np.ndarray
    variant: str

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w): patches per window."""
        return int(self.patches.shape[2]), int(self.patches.shape[3])

    def __len__(self) -> int:
        return int(self.patches.shape[0])


# --- the last block ------------------------------------------------------------------------------


def _is_custom(block: torch.nn.Module) -> bool:
    from open_clip.transformer import CustomResidualAttentionBlock

    return isinstance(block, CustomResidualAttentionBlock)


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    n, length, _ = t.shape
    return t.reshape(n, length, heads, -1).transpose(1, 2)  # (N, H, L, d)


def _qkv(block: torch.nn.Module, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-head q, k, v (N, H, L, d) of the block's attention on ``y = ln_1(x)``."""
    attn = block.attn
    bias = attn.in_proj_bias.float() if attn.in_proj_bias is not None else None
    q, k, v = F.linear(y, attn.in_proj_weight.float(), bias).chunk(3, dim=-1)
    q, k, v = (_split_heads(t, attn.num_heads) for t in (q, k, v))
    if _is_custom(block):
        q, k = attn.ln_q(q), attn.ln_k(k)
    return q, k, v


def _attend(
    a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(s · a bᵀ + bias) @ v per head (s = d^-0.5, as the block's own attention)."""
    return F.scaled_dot_product_attention(a, b, v, attn_mask=bias)


def _branch(block: torch.nn.Module, mixed: torch.Tensor) -> torch.Tensor:
    """The attention branch after ``A @ v`` (N, H, L, d): heads concatenated, ``out_proj`` (and the
    custom block's head scale, inner norm, ``ln_attn``), then ``ls_1``: (N, L, C)."""
    attn = block.attn
    custom = _is_custom(block)
    if custom and attn.head_scale is not None:
        mixed = mixed * attn.head_scale
    n, _, length, _ = mixed.shape
    x = mixed.transpose(1, 2).reshape(n, length, -1)
    if custom:
        x = attn.ln_inner(x)
    x = attn.out_proj(x)
    if custom:
        x = block.ln_attn(x)
    return block.ls_1(x)


def _finish_ordinary(block: torch.nn.Module, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    x = x + _branch(block, attended)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def neighbourhood_prior(grid: tuple[int, int], sigma: float) -> torch.Tensor:
    """NACLIP's ω: (1 + h·w)² additive attention bias, exp(−d²/2σ²) between patches (d in patches),
    0 in the CLS row and column."""
    h, w = grid
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centres = torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1).float()
    squared = torch.cdist(centres, centres).pow(2)
    prior = torch.zeros(1 + h * w, 1 + h * w)
    prior[1:, 1:] = torch.exp(-squared / (2 * sigma**2))
    return prior


def last_block_tokens(
    block: torch.nn.Module, x: torch.Tensor, grid: tuple[int, int], head: PatchHead
) -> tuple[torch.Tensor, torch.Tensor]:
    """(variant tokens (N, L, C), ordinary CLS token (N, C)) out of the last block for tokens ``x``."""
    y = block.ln_1(x)
    q, k, v = _qkv(block, y)
    ordinary_cls = _finish_ordinary(block, x[:, :1], _attend(q[:, :, :1], k, v))[:, 0]
    variant = head.variant
    if variant == "plain":
        return _finish_ordinary(block, x, _attend(q, k, v)), ordinary_cls
    if variant == "maskclip":
        mixed = v
    elif variant == "clearclip":
        mixed = _attend(q, q, v)
    elif variant == "sclip":
        mixed = _attend(q, q, v) + _attend(k, k, v)
    elif variant == "segearth":
        mixed = _attend(q, q, v) + _attend(k, k, v) + _attend(v, v, v)
    elif variant == "naclip":
        prior = neighbourhood_prior(grid, head.naclip_sigma).to(x.device, x.dtype)
        mixed = _attend(k, k, v, bias=prior)
    else:  # PatchHead refuses other names
        raise ValueError(f"unknown variant {variant!r}")
    return _branch(block, mixed), ordinary_cls


# --- public entry points ---------------------------------------------------------------------------


@torch.inference_mode()
def vit_patch_features(
    model: torch.nn.Module, pixels: torch.Tensor, head: PatchHead = PatchHead(), source: str = "model"
) -> PatchFeatures:
    """Patch features of normalised ``pixels`` (N, 3, S, S) from an open_clip CLIP ``model``.

    Everything before the last block runs in the caller's autocast; the last block, ``ln_post`` and
    ``proj`` run in float32. Refuses non-ViT towers with an :class:`InputError` naming ``source``.
    """
    visual = dense_vision_tower(model, source)
    return features_from_tokens(visual, tokens_before_last_block(visual, pixels), head)


@torch.inference_mode()
def features_from_tokens(visual: torch.nn.Module, before: VitTokens, head: PatchHead) -> PatchFeatures:
    """:class:`PatchFeatures` from the tokens entering the last block of the ViT tower ``visual``."""
    block = visual.transformer.resblocks[-1]
    with torch.autocast(before.tokens.device.type, enabled=False):
        tokens, ordinary_cls = last_block_tokens(block, before.tokens.float(), before.grid, head)
        projected = project_tokens(visual, tokens[:, 1:])
        image = project_tokens(visual, ordinary_cls[:, None])[:, 0]
    n, (h, w) = projected.shape[0], before.grid
    patches = projected.reshape(n, h, w, -1).permute(0, 3, 1, 2)
    return PatchFeatures(
        patches=patches.contiguous().cpu().numpy(), image=image.cpu().numpy(), variant=head.variant
    )


def dense_input_size(encoder: Encoder, head: PatchHead) -> int:
    """The square input side for ``head`` on ``encoder``: a multiple of the patch size."""
    visual = dense_vision_tower(encoder.model, "model")
    patch = int(visual.patch_size[0])
    size = int(head.input_size or encoder.input_size)
    if size % patch or size < patch:
        raise InputError("input_size", f"{size} px is not a multiple of the model's {patch} px patch")
    return size


def dense_pixels(encoder: Encoder, images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """(N, 3, size, size) normalised model input: each H×W×3 uint8 window resized (bicubic, as the
    encoder does) to exactly ``size`` × ``size``, so patches tile the whole window even when it is
    not square. Square windows give exactly :meth:`Encoder.preprocess` at that size."""
    from PIL import Image

    from geo_dfm.models.encoder import check_image

    resized = []
    for index, image in enumerate(images):
        array = check_image(image, index)
        if array.shape[:2] != (size, size):
            array = np.asarray(Image.fromarray(array, "RGB").resize((size, size), Image.BICUBIC))
        resized.append(array)
    if not resized:
        return torch.empty((0, 3, size, size), device=encoder.device)
    batch = torch.from_numpy(np.stack(resized)).to(encoder.device).permute(0, 3, 1, 2)
    mean = torch.tensor(encoder.mean, device=encoder.device).view(1, 3, 1, 1)
    std = torch.tensor(encoder.std, device=encoder.device).view(1, 3, 1, 1)
    return (batch.float().div(255) - mean) / std


def patch_features(
    encoder: Encoder, images: Sequence[np.ndarray], head: PatchHead = PatchHead()
) -> PatchFeatures:
    """:class:`PatchFeatures` of H×W×3 uint8 window images (any size; each resized to the head's
    input size) with ``encoder``'s model, device and precision, in one forward per call."""
    size = dense_input_size(encoder, head)
    pixels = dense_pixels(encoder, images, size)
    dtype = encoder.autocast_dtype
    autocast = (
        torch.autocast(encoder.device.type, dtype=dtype)
        if dtype is not None
        else torch.autocast(encoder.device.type, enabled=False)
    )
    with autocast:
        return vit_patch_features(encoder.model, pixels, head, source="model")
