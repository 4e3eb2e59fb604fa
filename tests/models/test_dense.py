"""Dense patch features by construction, and the contrast scores that turn them into maps.

Oracles: the tokens entering the last block come from open_clip itself (``forward_intermediates``; at
448 px from a 448 px copy of the model whose positional embedding open_clip's own
``resize_pos_embed`` resized); the last block, ``ln_post`` and ``proj`` are recomputed here by hand in
float64 from the block's weights (q, k, v from ``in_proj_weight``); the image embedding is
open_clip's ``encode_image``; contrast probabilities are softmaxes written out by hand.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import NamedTuple

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU

from geo_dfm.errors import InputError
from geo_dfm.models.contrast import DEFAULT_BACKGROUND, TextContrast
from geo_dfm.models.dense import (
    DEFAULT_VARIANT,
    DENSE_VARIANTS,
    NACLIP_SIGMA,
    PatchHead,
    dense_pixels,
    features_from_tokens,
    patch_features,
    vit_patch_features,
)
from geo_dfm.models.encoder import Encoder
from geo_dfm.models.registry import ModelSpec
from geo_dfm.models.vit_tokens import VitTokens

TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
B16_SHAPED = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 3, "width": 64, "head_width": 16, "patch_size": 16},
    "text_cfg": TEXT,
}
CUSTOM_BLOCKS = {  # open_clip's "custom" block with every option of its attention branch switched on
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 96, "layers": 2, "width": 48, "head_width": 16, "patch_size": 16, "ls_init_value": 0.5,
        "block_type": "custom", "qk_norm": True, "scale_heads": True, "scale_attn_inner": True, "scale_attn": True,
    },
    "text_cfg": TEXT,
}  # fmt: skip
COSINE_ATTENTION = {  # open_clip's own forward cannot run these (a 3-D bmm on 4-D heads): refused
    **CUSTOM_BLOCKS,
    "vision_cfg": {**CUSTOM_BLOCKS["vision_cfg"], "qk_norm": False, "scaled_cosine_attn": True},
}
TOLERANCE = 1e-5


class Built(NamedTuple):
    """A randomly initialised open_clip model and the architecture name it was built from."""

    arch: str
    model: torch.nn.Module


def _register(tmp_path_factory, name: str, config: dict) -> str:
    from geo_dfm.models.factory import register_custom_config

    path = tmp_path_factory.mktemp("cfg") / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    arch, _, _ = register_custom_config(path)
    return arch


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere, including biases, norms and layer scales (their defaults are constants)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim <= 1:
                param.add_(0.2 * torch.randn(param.shape, generator=generator))
    return model.eval()


def _build(arch: str, seed: int = 0) -> Built:
    torch.manual_seed(seed)
    return Built(arch, _randomised(open_clip.create_model(arch, pretrained=None), seed))


@pytest.fixture(scope="module")
def vit_b32() -> Built:
    return _build("ViT-B-32")


@pytest.fixture(scope="module")
def b16_shaped(tmp_path_factory) -> Built:
    return _build(_register(tmp_path_factory, "tiny-b16", B16_SHAPED))


@pytest.fixture(scope="module")
def custom_blocks(tmp_path_factory) -> Built:
    return _build(_register(tmp_path_factory, "tiny-custom", CUSTOM_BLOCKS))


# --- the independent computation ------------------------------------------------------------------


_RESIZED: dict[tuple[int, int], torch.nn.Module] = {}


def _model_at(built: Built, size: int) -> torch.nn.Module:
    """The model itself, or a copy built for ``size`` px whose positional embedding open_clip resized."""
    if built.model.visual.image_size[0] == size:
        return built.model
    key = (id(built.model), size)
    if key not in _RESIZED:
        _RESIZED[key] = _resized_copy(built, size)
    return _RESIZED[key]


def _resized_copy(built: Built, size: int) -> torch.nn.Module:
    from open_clip.model import resize_pos_embed

    resized = open_clip.create_model(built.arch, pretrained=None, force_image_size=size)
    state = {k: v.clone() for k, v in built.model.state_dict().items()}
    resize_pos_embed(state, resized)
    resized.load_state_dict(state)
    assert resized.visual.grid_size == (size // resized.visual.patch_size[0],) * 2
    return resized.eval()


_TOKENS: dict[tuple[int, int, int], torch.Tensor] = {}


def _tokens_into_last_block(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(N, 1 + h·w, C) tokens after the second-to-last block, by open_clip (cached per model and input)."""
    key = (id(model), pixels.data_ptr(), pixels.shape[-1])
    if key not in _TOKENS:
        _TOKENS[key] = _open_clip_tokens(model, pixels)
    return _TOKENS[key]


def _open_clip_tokens(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    visual = model.visual
    depth = len(visual.transformer.resblocks)
    with torch.no_grad():
        out = visual.forward_intermediates(
            pixels, indices=[depth - 2], output_fmt="NLC", output_extra_tokens=True, intermediates_only=True
        )
    return torch.cat([out["image_intermediates_prefix"][0], out["image_intermediates"][0]], dim=1)


def _ln(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
    if isinstance(norm, torch.nn.Identity):
        return x
    return F.layer_norm(x, (x.shape[-1],), norm.weight.double(), norm.bias.double(), norm.eps)


def _scale(x: torch.Tensor, layer_scale: torch.nn.Module) -> torch.Tensor:
    return x * layer_scale.gamma.double() if hasattr(layer_scale, "gamma") else x


def _softmax_attention(a, b, bias=0.0):
    logits = (a @ b.transpose(-1, -2)) * a.shape[-1] ** -0.5
    return torch.softmax(logits + bias, dim=-1)


def _gaussian_prior(h: int, w: int, sigma: float) -> torch.Tensor:
    rows, cols = np.divmod(np.arange(h * w), w)
    d2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
    prior = np.zeros((1 + h * w, 1 + h * w))
    prior[1:, 1:] = np.exp(-d2 / (2 * sigma**2))
    return torch.from_numpy(prior)


def reference_patch_features(built: Built, pixels: torch.Tensor, variant: str, sigma: float = NACLIP_SIGMA):
    """(N, D, h, w) patch features and (N, D) image embedding, written out from the last block's weights."""
    size = pixels.shape[-1]
    sized = _model_at(built, size)
    x = _tokens_into_last_block(sized, pixels).double()
    visual = sized.visual
    block = visual.transformer.resblocks[-1]
    attn = block.attn
    n, length, width = x.shape
    heads = attn.num_heads
    with torch.no_grad():
        y = _ln(x, block.ln_1)
        weight, bias = attn.in_proj_weight.double(), attn.in_proj_bias.double()
        q = y @ weight[:width].T + bias[:width]
        k = y @ weight[width : 2 * width].T + bias[width : 2 * width]
        v = y @ weight[2 * width :].T + bias[2 * width :]
        q, k, v = (t.reshape(n, length, heads, -1).permute(0, 2, 1, 3) for t in (q, k, v))
        if hasattr(attn, "ln_q"):
            q, k = _ln(q, attn.ln_q), _ln(k, attn.ln_k)
        h = w = int(math.isqrt(length - 1))

        def branch(mixed):
            if getattr(attn, "head_scale", None) is not None:
                mixed = mixed * attn.head_scale.double()
            out = mixed.permute(0, 2, 1, 3).reshape(n, -1, width)
            out = _ln(out, getattr(attn, "ln_inner", torch.nn.Identity()))
            out = out @ attn.out_proj.weight.double().T + attn.out_proj.bias.double()
            out = _ln(out, getattr(block, "ln_attn", torch.nn.Identity()))
            return _scale(out, block.ls_1)

        def ordinary(tokens, mixed):
            x1 = tokens + branch(mixed)
            hidden = _ln(x1, block.ln_2) @ block.mlp.c_fc.weight.double().T + block.mlp.c_fc.bias.double()
            if isinstance(block.mlp.gelu, QuickGELU):
                hidden = hidden * torch.sigmoid(1.702 * hidden)
            else:
                hidden = F.gelu(hidden)
            mlp = hidden @ block.mlp.c_proj.weight.double().T + block.mlp.c_proj.bias.double()
            return x1 + _scale(mlp, block.ls_2)

        attention = {
            "plain": lambda: _softmax_attention(q, k) @ v,
            "maskclip": lambda: v,
            "clearclip": lambda: _softmax_attention(q, q) @ v,
            "sclip": lambda: (_softmax_attention(q, q) + _softmax_attention(k, k)) @ v,
            "naclip": lambda: _softmax_attention(k, k, _gaussian_prior(h, w, sigma)) @ v,
            "segearth": lambda: (
                (_softmax_attention(q, q) + _softmax_attention(k, k) + _softmax_attention(v, v)) @ v
            ),
        }[variant]()
        tokens = ordinary(x, attention) if variant == "plain" else branch(attention)
        image_token = ordinary(x, _softmax_attention(q, k) @ v)[:, 0]

        def project(t):
            return F.normalize(_ln(t, visual.ln_post) @ visual.proj.double(), dim=-1)

        patches = project(tokens[:, 1:]).reshape(n, h, w, -1).permute(0, 3, 1, 2)
        image = project(image_token)
    return patches.numpy(), image.numpy()


_PIXELS: dict[tuple[int, int, int], torch.Tensor] = {}


def _pixels(size: int, count: int = 1, seed: int = 1) -> torch.Tensor:
    """Normalised random input (the same tensor for the same arguments, so its tokens are cached once)."""
    key = (size, count, seed)
    if key not in _PIXELS:
        _PIXELS[key] = torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return _PIXELS[key]


# --- by construction --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", DENSE_VARIANTS)
def test_vit_b32_patch_features_equal_the_hand_computation(vit_b32, variant):
    """The last block of each variant, from the tokens open_clip feeds into it (one B-32 forward is
    seconds on our CPUs; the whole pipeline is checked on B-32 once, below, and per variant on the
    B/16-shaped model)."""
    pixels = _pixels(224)
    tokens = _tokens_into_last_block(vit_b32.model, pixels)
    found = features_from_tokens(vit_b32.model.visual, VitTokens(tokens, (7, 7)), PatchHead(variant))
    patches, image = reference_patch_features(vit_b32, pixels, variant)
    assert found.patches.shape == (1, 512, 7, 7) and found.patches.dtype == np.float32
    assert np.abs(found.patches - patches).max() <= TOLERANCE
    assert np.abs(found.image - image).max() <= TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(found.patches, axis=1), 1.0, atol=1e-5)


def test_vit_b32_whole_pipeline_and_image_embedding_match_open_clip(vit_b32):
    pixels = _pixels(224)
    found = vit_patch_features(vit_b32.model, pixels, PatchHead(DEFAULT_VARIANT))
    patches, _ = reference_patch_features(vit_b32, pixels, DEFAULT_VARIANT)
    assert np.abs(found.patches - patches).max() <= TOLERANCE
    with torch.no_grad():
        expected = F.normalize(vit_b32.model.encode_image(pixels), dim=-1).numpy()
    assert np.abs(found.image - expected).max() <= TOLERANCE


@pytest.mark.parametrize("size", [224, 448])
@pytest.mark.parametrize("variant", DENSE_VARIANTS)
def test_b16_shaped_patch_features_equal_the_hand_computation(b16_shaped, variant, size):
    pixels = _pixels(size)
    found = vit_patch_features(b16_shaped.model, pixels, PatchHead(variant))
    patches, image = reference_patch_features(b16_shaped, pixels, variant)
    assert found.grid == (size // 16, size // 16)
    assert np.abs(found.patches - patches).max() <= TOLERANCE
    assert np.abs(found.image - image).max() <= TOLERANCE


@pytest.mark.parametrize("variant", DENSE_VARIANTS)
def test_custom_attention_blocks_equal_the_hand_computation(custom_blocks, variant):
    built = custom_blocks
    for size in (96, 160):
        pixels = _pixels(size)
        found = vit_patch_features(built.model, pixels, PatchHead(variant))
        patches, image = reference_patch_features(built, pixels, variant)
        assert np.abs(found.patches - patches).max() <= TOLERANCE, size
        assert np.abs(found.image - image).max() <= TOLERANCE, size


# --- through an Encoder -----------------------------------------------------------------------------


@pytest.fixture
def b16_encoder(b16_shaped):
    spec = ModelSpec(
        name="tiny-b16", architecture=b16_shaped.arch, description="test", family="custom", init="random",
        licence="test", local="memory", input_size=224,
    )  # fmt: skip
    return Encoder(b16_shaped.model, open_clip.get_tokenizer(b16_shaped.arch), spec, torch.device("cpu"))


def _windows(count: int, size: int, seed: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def test_a_dense_run_leaves_the_encoder_and_its_model_unchanged(b16_encoder):
    model = b16_encoder.model
    images = _windows(1, 224)
    before = b16_encoder.encode_images(images)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    forwards = {name: type(module).forward for name, module in model.named_modules()}
    for variant in DENSE_VARIANTS:
        patch_features(b16_encoder, images, PatchHead(variant, input_size=448))
    after = b16_encoder.encode_images(images)
    assert np.array_equal(before, after)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    for name, module in model.named_modules():
        assert "forward" not in vars(module), name  # no instance-level patch
        assert type(module).forward is forwards[name]
        assert not module._forward_hooks and not module._forward_pre_hooks, name
    assert model.visual.positional_embedding.shape[0] == 1 + 14 * 14


def test_patch_features_of_windows_match_the_encoders_own_embedding(b16_encoder):
    images = _windows(2, 224)
    found = patch_features(b16_encoder, images, PatchHead(DEFAULT_VARIANT))
    assert found.patches.shape == (2, 32, 14, 14) and found.variant == DEFAULT_VARIANT
    assert np.abs(found.image - b16_encoder.encode_images(images)).max() <= TOLERANCE


def test_dense_pixels_equal_the_encoder_preprocessing_for_square_windows(b16_encoder):
    from PIL import Image

    square = _windows(2, 100)
    assert torch.equal(dense_pixels(b16_encoder, square, 224), b16_encoder.preprocess(square))
    wide = np.random.default_rng(3).integers(0, 256, (90, 150, 3), dtype=np.uint8)
    pixels = dense_pixels(b16_encoder, [wide], 448)
    resized = np.asarray(Image.fromarray(wide).resize((448, 448), Image.BICUBIC))
    mean = torch.tensor(b16_encoder.mean).view(3, 1, 1)
    std = torch.tensor(b16_encoder.std).view(3, 1, 1)
    expected = (torch.from_numpy(resized.copy()).permute(2, 0, 1).float() / 255 - mean) / std
    assert pixels.shape == (1, 3, 448, 448) and torch.allclose(pixels[0], expected, atol=1e-6)


def test_bad_heads_and_unsupported_towers_are_input_errors(b16_encoder, tmp_path_factory):
    with pytest.raises(InputError, match="variant"):
        PatchHead("mask-clip")
    with pytest.raises(InputError, match="16 px patch"):
        patch_features(b16_encoder, _windows(1, 64), PatchHead(input_size=200))
    resnet = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
        "text_cfg": TEXT,
    }
    built = _build(_register(tmp_path_factory, "tiny-resnet", resnet))
    with pytest.raises(InputError, match="ViT"):
        vit_patch_features(built.model, _pixels(64, count=1), PatchHead())
    cosine = _build(_register(tmp_path_factory, "tiny-cosine", COSINE_ATTENTION))
    with pytest.raises(InputError, match="cosine"):
        vit_patch_features(cosine.model, _pixels(96, count=1), PatchHead())


# --- contrast ----------------------------------------------------------------------------------------


def _unit(array: np.ndarray, axis: int = -1) -> np.ndarray:
    return (array / np.linalg.norm(array, axis=axis, keepdims=True)).astype(np.float32)


def _contrast(**extra) -> TextContrast:
    rng = np.random.default_rng(5)
    fields = dict(
        names=("water", "runway"),
        texts=_unit(rng.normal(size=(2, 8))),
        background_names=("Water", "forest", "town"),
        background=_unit(rng.normal(size=(3, 8))),
        temperature=10.0,
    )
    return TextContrast(**{**fields, **extra})


def test_each_query_competes_with_the_background_but_not_with_its_own_name():
    contrast = _contrast()
    rng = np.random.default_rng(6)
    features = _unit(rng.normal(size=(3, 8, 2, 2)), axis=1)
    scores = contrast.score(features)
    assert scores.probability.shape == scores.cosine.shape == (3, 2, 2, 2)
    for n, i, r, c in np.ndindex(3, 2, 2, 2):
        f = features[n, :, r, c]
        own = contrast.texts[i] @ f
        rivals = [contrast.background[j] @ f for j in range(3) if not (i == 0 and j == 0)]  # "Water" is water
        expected = math.exp(10 * own) / (math.exp(10 * own) + sum(math.exp(10 * x) for x in rivals))
        assert scores.probability[n, i, r, c] == pytest.approx(expected, abs=1e-6)
        assert scores.cosine[n, i, r, c] == pytest.approx(own, abs=1e-6)
    channels = scores.channels(1)
    assert channels.shape == (4, 2, 2)
    assert np.array_equal(channels[:2], scores.probability[1]) and np.array_equal(
        channels[2:], scores.cosine[1]
    )


def test_joint_labels_share_one_softmax_with_the_background():
    contrast = _contrast(joint=True, background_names=("water", "forest", "town"))
    features = _unit(np.random.default_rng(7).normal(size=(4, 8)))
    probability = contrast.score(features).probability
    logits = 10 * features @ np.concatenate([contrast.texts, contrast.background[1:]]).T  # "water" is a label
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probability, expected[:, :2], atol=1e-6)
    alone = dataclasses.replace(contrast, background_names=(), background=np.zeros((0, 8), np.float32))
    np.testing.assert_allclose(alone.score(features).probability.sum(axis=1), 1.0, atol=1e-6)


def test_cls_subtraction_lowers_what_the_whole_window_already_says():
    contrast = _contrast(cls_lambda=0.3)
    rng = np.random.default_rng(8)
    features, image = _unit(rng.normal(size=(2, 8, 1, 1)), axis=1), _unit(rng.normal(size=(2, 8)))
    scores = contrast.score(features, image)
    vocabulary = np.concatenate([contrast.texts, contrast.background])
    adjusted = features[:, :, 0, 0] @ vocabulary.T - 0.3 * image @ vocabulary.T
    logits = 10 * adjusted[:, [1, 2, 3, 4]]  # runway against all three background names
    expected = np.exp(logits[:, 0]) / np.exp(logits).sum(axis=1)
    np.testing.assert_allclose(scores.probability[:, 1, 0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(scores.cosine[:, :, 0, 0], features[:, :, 0, 0] @ contrast.texts.T, atol=1e-6)
    with pytest.raises(ValueError, match="image"):
        contrast.score(features)


def test_bad_vocabularies_are_input_errors(b16_encoder):
    with pytest.raises(InputError, match="background"):
        _contrast(background_names=("water",), background=_unit(np.ones((1, 8))), names=("water",),
                  texts=_unit(np.ones((1, 8))))  # fmt: skip
    with pytest.raises(InputError, match="duplicate"):
        TextContrast.build(b16_encoder, ["water"], ["forest", "Forest"])
    with pytest.raises(InputError, match="empty"):
        TextContrast.build(b16_encoder, ["water", " "])
    built = TextContrast.build(b16_encoder, ["water"])
    assert built.background_names == DEFAULT_BACKGROUND
    assert built.temperature == pytest.approx(b16_encoder.logit_scale)
    np.testing.assert_allclose(built.texts, b16_encoder.encode_texts(["water"]), atol=1e-6)


def test_window_grids_are_splatted_bilinearly_onto_window_pixels():
    """The spine adds ``channels(i)`` per window to the accumulator: that is bilinear upsampling."""
    from affine import Affine
    from rasterio.windows import Window

    from tile_tools.accumulate import WeightedAccumulator
    from tile_tools.pixel_grid import PixelGrid

    grid_values = np.random.default_rng(9).random((4, 7, 7)).astype(np.float32)
    with WeightedAccumulator(PixelGrid(300, 300, Affine.identity(), None), 4, weight="uniform") as acc:
        acc.add(Window(20, 30, 224, 224), grid_values)
        stitched = acc.mean()[:, 30:254, 20:244]
    expected = F.interpolate(torch.from_numpy(grid_values)[None], size=(224, 224), mode="bilinear")[0]
    np.testing.assert_allclose(stitched, expected.numpy(), atol=1e-5)
