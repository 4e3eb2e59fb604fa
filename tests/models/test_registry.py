"""The model registry: sources, open_clip agreement, and QuickGELU where the weights need it."""

from __future__ import annotations

import open_clip
import pytest

from geo_dfm.errors import InputError
from geo_dfm.models.factory import build_model
from geo_dfm.models.registry import DEFAULT_MODEL, get_model_spec, list_model_specs

NAMES = [spec.name for spec in list_model_specs()]


def test_every_published_checkpoint_is_registered():
    expected = {
        "georsclip-vit-b-32",
        "georsclip-vit-b-32-ret2",
        "georsclip-vit-l-14",
        "georsclip-vit-l-14-336",
        "georsclip-vit-h-14",
        "remoteclip-vit-b-32",
        "remoteclip-vit-l-14",
        "remoteclip-rn50",
        "skyclip-vit-b-32",
        "skyclip-vit-l-14",
        "clip-vit-b-32-openai",
        "clip-vit-b-32-laion2b",
        "toy",
    }
    assert expected <= set(NAMES)
    assert len(NAMES) == len(set(NAMES))
    assert DEFAULT_MODEL == "georsclip-vit-b-32"
    toy = get_model_spec("toy")
    assert (toy.architecture, toy.local, toy.templates) == ("geo-dfm-toy", "toy", "rs105")
    georsclip = get_model_spec("georsclip-vit-b-32")
    assert (georsclip.hf_repo, georsclip.filename) == ("Zilun/GeoRSCLIP", "ckpt/RS5M_ViT-B-32.pt")
    assert get_model_spec("georsclip-vit-l-14-336").input_size == 336
    assert get_model_spec("skyclip-vit-b-32").archive_member == "epoch_20.pt"


@pytest.mark.parametrize("name", NAMES)
def test_architecture_exists_in_open_clip_with_the_spec_input_size(name):
    from geo_dfm.models.configs import register_builtin_configs

    register_builtin_configs()
    spec = get_model_spec(name)
    config = open_clip.get_model_config(spec.architecture)
    assert config is not None, spec.architecture
    size = config["vision_cfg"]["image_size"]
    assert (size if isinstance(size, int) else size[0]) == spec.input_size


@pytest.mark.parametrize("spec", [s for s in list_model_specs() if s.pretrained_tag], ids=lambda s: s.name)
def test_clip_baselines_match_open_clip_pretrained_tags(spec):
    tag = open_clip.get_pretrained_cfg(spec.architecture, spec.pretrained_tag)
    assert tag, (spec.architecture, spec.pretrained_tag)
    assert tag["hf_hub"].rstrip("/") == spec.hf_repo
    assert bool(tag.get("quick_gelu", False)) == spec.quick_gelu
    assert tuple(tag["mean"]) == spec.mean and tuple(tag["std"]) == spec.std


def _activations(model) -> set[str]:
    return {type(module).__name__ for name, module in model.named_modules() if name.endswith(".gelu")}


# RemoteCLIP is OpenAI-initialised but its activation is undocumented; the registry follows its README
# (plain architecture) and offers load_encoder(..., quick_gelu=True) -- see ../shared/specs/models.md.
OPENAI_INIT = [s for s in list_model_specs() if s.init == "openai" and s.family != "remoteclip"]


@pytest.mark.parametrize("spec", OPENAI_INIT, ids=lambda s: s.name)
def test_openai_initialised_entries_really_build_quickgelu(spec):
    model = build_model(spec.architecture, meta=True)
    assert _activations(model) == {"QuickGELU"}


@pytest.mark.parametrize("spec", [s for s in list_model_specs() if s.init == "laion2b"], ids=lambda s: s.name)
def test_laion_initialised_entries_build_gelu(spec):
    assert _activations(build_model(spec.architecture, meta=True)) == {"GELU"}


def test_the_upstream_readme_way_builds_gelu_the_pitfall():
    # open_clip >= 2.29 builds GELU for 'ViT-B-32' even for OpenAI weights: why the registry says -quickgelu
    assert _activations(build_model("ViT-B-32", meta=True)) == {"GELU"}
    assert _activations(build_model("ViT-B-32", quick_gelu=True, meta=True)) == {"QuickGELU"}


def test_unknown_name_lists_close_names():
    with pytest.raises(InputError, match="georsclip-vit-b-32"):
        get_model_spec("georsclip-b-32")


@pytest.mark.parametrize("name", NAMES)
def test_patch_size_and_dense_suitability_agree_with_open_clip(name):
    from geo_dfm.models.configs import register_builtin_configs

    register_builtin_configs()
    spec = get_model_spec(name)
    vision = open_clip.get_model_config(spec.architecture)["vision_cfg"]
    is_vit = not isinstance(vision.get("layers"), (list, tuple)) and "timm_model_name" not in vision
    assert spec.patch_size == (vision["patch_size"] if is_vit else None)
    expected = "unsupported" if not is_vit else ("recommended" if vision["patch_size"] <= 16 else "coarse")
    assert spec.dense == expected


def test_rs_clips_with_14_or_16_px_patches_are_registered_for_dense_maps():
    farslip = get_model_spec("farslip1-vit-b-16")
    assert (farslip.hf_repo, farslip.filename) == ("ZhenShiL/FarSLIP", "FarSLIP1_ViT-B-16.pt")
    assert farslip.architecture == "ViT-B-16-quickgelu" and farslip.licence.startswith("unspecified")
    dense = {s.name for s in list_model_specs() if s.dense == "recommended" and s.family != "clip"}
    assert {"georsclip-vit-l-14", "georsclip-vit-h-14", "remoteclip-vit-l-14", "skyclip-vit-l-14"} <= dense
    assert "farslip1-vit-b-16" in dense
    assert get_model_spec("remoteclip-rn50").dense == "unsupported"
    assert get_model_spec("georsclip-vit-b-32").dense == "coarse"
    assert get_model_spec("clip-vit-b-16-openai").dense == "recommended"
