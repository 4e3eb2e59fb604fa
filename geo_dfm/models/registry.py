"""The registered models: one :class:`ModelSpec` per published checkpoint (no heavy imports here).

Facts (files, architectures, activations) come from the GeoRSCLIP, RemoteCLIP, SkyScript and
open_clip releases; see ``../shared/specs/models.md``. OpenAI-initialised weights need the
``-quickgelu`` open_clip architectures: since open_clip 2.29 the plain names build GELU, which
silently costs several points of accuracy.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from geo_dfm.errors import InputError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_MODEL = "georsclip-vit-b-32"

_GEORSCLIP_LICENCE = (
    "GeoRSCLIP code MIT; weights card says 'cc' (terms unclear). Do not redistribute the weights."
)
_REMOTECLIP_LICENCE = "RemoteCLIP code Apache-2.0; weights as published by the authors. Do not redistribute."
_SKYCLIP_LICENCE = "SkyScript code MIT; weights as published by the authors. Do not redistribute."
_OPENAI_LICENCE = "OpenAI CLIP weights, MIT licence."
_LAION_LICENCE = "LAION OpenCLIP weights, MIT licence."
_SKYSCRIPT_URL = "https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt/"
_FARSLIP_LICENCE = (
    "unspecified: neither the FarSLIP weights card nor its code repository gives a licence. "
    "Do not redistribute."
)
DENSE_RECOMMENDED_MAX_PATCH = 16
"""Dense (patch-level) maps are recommended up to this patch size; coarser patches (B/32) work but the
published methods lose about 5 mIoU against the same method on B/16 (``docs/dense.md``)."""


@dataclass(frozen=True)
class ModelSpec:
    """Where a checkpoint comes from and how to build and feed the model that reads it.

    Exactly one source: ``hf_repo`` + ``filename`` (Hugging Face Hub; ``safetensors_filename``
    is tried first when set), ``url`` (+ ``archive_member`` inside a zip), or ``local``
    (``"toy"``: produced on this machine by :func:`geo_dfm.synthetic.ensure_toy_model`; specs the
    factory makes for user checkpoints carry the file path here).
    """

    name: str
    architecture: str
    description: str
    family: str
    init: str
    licence: str
    hf_repo: str | None = None
    filename: str | None = None
    safetensors_filename: str | None = None
    url: str | None = None
    archive_member: str | None = None
    local: str | None = None
    pretrained_tag: str | None = None
    input_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    templates: str = "rs105"
    download_mb: int | None = None
    patch_size: int | None = None
    """Pixels per patch side of a ViT image tower; ``None`` for convolutional towers and user checkpoints."""
    notes: str = ""

    def __post_init__(self) -> None:
        sources = [self.hf_repo is not None, self.url is not None, self.local is not None]
        if sum(sources) != 1:
            raise ValueError(f"model spec {self.name!r} needs exactly one of hf_repo, url, local")
        if self.hf_repo is not None and not self.filename:
            raise ValueError(f"model spec {self.name!r}: hf_repo needs a filename")

    @property
    def quick_gelu(self) -> bool:
        """True when the architecture uses QuickGELU (the activation of OpenAI-trained CLIPs)."""
        return self.architecture.endswith("-quickgelu")

    @property
    def dense(self) -> str:
        """How the entry suits dense (patch-level) maps: ``"recommended"`` (ViT, patches of at most
        16 px), ``"coarse"`` (ViT with larger patches), ``"unsupported"`` (no ViT tower) or
        ``"unknown"`` (user checkpoints: the dense head checks the loaded model itself)."""
        if self.family == "custom":
            return "unknown"
        if self.patch_size is None:
            return "unsupported"
        return "recommended" if self.patch_size <= DENSE_RECOMMENDED_MAX_PATCH else "coarse"

    @property
    def source(self) -> str:
        """One line saying where the weights come from."""
        if self.hf_repo is not None:
            return f"https://huggingface.co/{self.hf_repo} file {self.filename}"
        if self.url is not None:
            member = f" (file {self.archive_member} inside)" if self.archive_member else ""
            return f"{self.url}{member}"
        if self.local == "toy":
            return "trained on this machine (geo_dfm.synthetic.ensure_toy_model)"
        return f"local file {self.local}"


def _vit_patch(architecture: str) -> int | None:
    """Patch size of an open_clip ``ViT-<size>-<patch>[-...]`` architecture name, None for others."""
    parts = architecture.split("-")
    if parts[0] != "ViT" or len(parts) < 3 or not parts[2].isdigit():
        return None
    return int(parts[2])


def _georsclip(name: str, arch: str, filename: str, description: str, **extra) -> ModelSpec:
    return ModelSpec(
        name=name,
        architecture=arch,
        description=description,
        family="georsclip",
        init=extra.pop("init", "openai"),
        licence=_GEORSCLIP_LICENCE,
        hf_repo="Zilun/GeoRSCLIP",
        filename=filename,
        templates="rs105",
        patch_size=_vit_patch(arch),
        **extra,
    )


def _remoteclip(arch: str) -> ModelSpec:
    return ModelSpec(
        name=f"remoteclip-{arch.lower()}",
        architecture=arch,
        description=f"RemoteCLIP {arch}: CLIP continually trained on remote-sensing captions.",
        family="remoteclip",
        init="openai",
        licence=_REMOTECLIP_LICENCE,
        hf_repo="chendelong/RemoteCLIP",
        filename=f"RemoteCLIP-{arch}.pt",
        templates="remoteclip",
        patch_size=_vit_patch(arch),
        notes=(
            "Built as the RemoteCLIP README does (plain open_clip architecture, GELU); the activation used "
            "in training is not documented: load_encoder(..., quick_gelu=True) tries QuickGELU."
        ),
    )


def _skyclip(name: str, zip_name: str, arch: str, init: str, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        architecture=arch,
        description=description,
        family="skyclip",
        init=init,
        licence=_SKYCLIP_LICENCE,
        url=_SKYSCRIPT_URL + zip_name,
        archive_member="epoch_20.pt",
        templates="skyclip",
        patch_size=_vit_patch(arch),
        notes="open_clip training checkpoint (state_dict wrapper, 'module.' prefix).",
    )


def _clip(name: str, arch: str, tag: str, hf_repo: str, init: str, description: str, **extra) -> ModelSpec:
    return ModelSpec(
        name=name,
        architecture=arch,
        description=description,
        family="clip",
        init=init,
        licence=_OPENAI_LICENCE if init == "openai" else _LAION_LICENCE,
        hf_repo=hf_repo,
        filename="open_clip_pytorch_model.bin",
        safetensors_filename="open_clip_model.safetensors",
        pretrained_tag=tag,
        templates="rs105",
        patch_size=_vit_patch(arch),
        notes=f"open_clip pretrained tag '{tag}' (general foundation-model baseline).",
        **extra,
    )


_SPECS: tuple[ModelSpec, ...] = (
    _georsclip(
        "georsclip-vit-b-32",
        "ViT-B-32-quickgelu",
        "ckpt/RS5M_ViT-B-32.pt",
        "GeoRSCLIP ViT-B/32: OpenAI CLIP fine-tuned on RS5M (the paper's main model).",
        download_mb=605,
    ),
    _georsclip(
        "georsclip-vit-b-32-ret2",
        "ViT-B-32-quickgelu",
        "ckpt/RS5M_ViT-B-32_RET-2.pt",
        "GeoRSCLIP ViT-B/32 further tuned on RSICD+RSITMD for image-text retrieval.",
        download_mb=605,
    ),
    _georsclip(
        "georsclip-vit-l-14",
        "ViT-L-14-quickgelu",
        "ckpt/RS5M_ViT-L-14.pt",
        "GeoRSCLIP ViT-L/14: OpenAI CLIP fine-tuned on RS5M.",
        download_mb=1710,
    ),
    _georsclip(
        "georsclip-vit-l-14-336",
        "ViT-L-14-336-quickgelu",
        "ckpt/RS5M_ViT-L-14-336.pt",
        "GeoRSCLIP ViT-L/14 at 336 px: OpenAI CLIP fine-tuned on RS5M.",
        input_size=336,
    ),
    _georsclip(
        "georsclip-vit-h-14",
        "ViT-H-14",
        "ckpt/RS5M_ViT-H-14.pt",
        "GeoRSCLIP ViT-H/14: LAION-2B CLIP fine-tuned on RS5M (GELU).",
        init="laion2b",
        download_mb=3940,
    ),
    _remoteclip("ViT-B-32"),
    _remoteclip("ViT-L-14"),
    _remoteclip("RN50"),
    _skyclip(
        "skyclip-vit-b-32",
        "SkyCLIP_ViT_B32_top50pct.zip",
        "ViT-B-32",
        "laion2b",
        "SkyCLIP ViT-B/32: LAION-2B CLIP continually trained on SkyScript (top 50%).",
    ),
    _skyclip(
        "skyclip-vit-l-14",
        "SkyCLIP_ViT_L14_top30pct.zip",
        "ViT-L-14-quickgelu",
        "openai",
        "SkyCLIP ViT-L/14: OpenAI CLIP continually trained on SkyScript (top 30%).",
    ),
    _skyclip(
        "skyclip-vit-l-14-top50",
        "SkyCLIP_ViT_L14_top50pct.zip",
        "ViT-L-14-quickgelu",
        "openai",
        "SkyCLIP ViT-L/14: OpenAI CLIP continually trained on SkyScript (top 50%).",
    ),
    _skyclip(
        "skyclip-vit-l-14-laion-rs",
        "SkyCLIP_ViT_L14_top30pct_filtered_by_CLIP_laion_RS.zip",
        "ViT-L-14-quickgelu",
        "openai",
        "SkyCLIP ViT-L/14: SkyScript top 30% filtered by a LAION-RS CLIP (best SkyCLIP average).",
    ),
    _clip(
        "clip-vit-b-32-openai",
        "ViT-B-32-quickgelu",
        "openai",
        "timm/vit_base_patch32_clip_224.openai",
        "openai",
        "OpenAI CLIP ViT-B/32: the general baseline GeoRSCLIP-B/32 starts from.",
    ),
    _clip(
        "clip-vit-b-16-openai",
        "ViT-B-16-quickgelu",
        "openai",
        "timm/vit_base_patch16_clip_224.openai",
        "openai",
        "OpenAI CLIP ViT-B/16: the backbone the dense-map papers report on (general baseline).",
    ),
    _clip(
        "clip-vit-l-14-openai",
        "ViT-L-14-quickgelu",
        "openai",
        "timm/vit_large_patch14_clip_224.openai",
        "openai",
        "OpenAI CLIP ViT-L/14.",
    ),
    _clip(
        "clip-vit-l-14-336-openai",
        "ViT-L-14-336-quickgelu",
        "openai",
        "timm/vit_large_patch14_clip_336.openai",
        "openai",
        "OpenAI CLIP ViT-L/14 at 336 px.",
        input_size=336,
    ),
    _clip(
        "clip-rn50-openai",
        "RN50-quickgelu",
        "openai",
        "timm/resnet50_clip.openai",
        "openai",
        "OpenAI CLIP ResNet-50.",
    ),
    _clip(
        "clip-vit-b-32-laion2b",
        "ViT-B-32",
        "laion2b_s34b_b79k",
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "laion2b",
        "OpenCLIP ViT-B/32 trained on LAION-2B.",
    ),
    _clip(
        "clip-vit-h-14-laion2b",
        "ViT-H-14",
        "laion2b_s32b_b79k",
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        "laion2b",
        "OpenCLIP ViT-H/14 trained on LAION-2B: the baseline GeoRSCLIP-H/14 starts from.",
    ),
    ModelSpec(
        name="farslip1-vit-b-16",
        architecture="ViT-B-16-quickgelu",
        description=(
            "FarSLIP stage 1 ViT-B/16: OpenAI CLIP adapted on RS5M for fine-grained (patch-level) alignment."
        ),
        family="farslip",
        init="openai",
        licence=_FARSLIP_LICENCE,
        hf_repo="ZhenShiL/FarSLIP",
        filename="FarSLIP1_ViT-B-16.pt",
        templates="rs105",
        patch_size=16,
        notes=(
            "open_clip training checkpoint evaluated by its authors with the plain ViT-B-16 architecture and "
            "QuickGELU. The stage-2 B/16 file (FarSLIP2_ViT-B-16.pt) has a Long-CLIP text tower (248 "
            "positions) that open_clip cannot load strictly, so it is not registered."
        ),
    ),
    ModelSpec(
        name="toy",
        architecture="geo-dfm-toy",
        description="Tiny CLIP trained on geo-dfm's synthetic scenes (demos and tests; not a real RS model).",
        family="toy",
        init="synthetic",
        licence="Part of geo-dfm (MIT).",
        local="toy",
        input_size=64,
        templates="rs105",
        patch_size=8,
        notes="Weights are trained once on this machine by geo_dfm.synthetic.ensure_toy_model().",
    ),
)

_BY_NAME: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def list_model_specs() -> list[ModelSpec]:
    """Every registered model, in a stable order (GeoRSCLIP, RemoteCLIP, SkyCLIP, CLIP, toy)."""
    return list(_SPECS)


def is_registered(name: str) -> bool:
    """True when ``name`` is a registry name."""
    return name in _BY_NAME


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; an unknown name is an :class:`InputError` naming close ones."""
    spec = _BY_NAME.get(name) or _BY_NAME.get(name.strip().lower())
    if spec is not None:
        return spec
    close = difflib.get_close_matches(name.lower(), list(_BY_NAME), n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise InputError(
        "--model",
        f"unknown model {name!r}; {hint}see 'geo-dfm models list' for all {len(_SPECS)} registered models",
    )
