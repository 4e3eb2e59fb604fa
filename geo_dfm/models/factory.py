"""Load an :class:`Encoder` by registry name, open_clip architecture + weights, or config + weights.

The model is always built with ``pretrained=None`` (nothing downloaded behind the user's back)
and the checkpoint loaded strictly (:func:`geo_dfm.models.checkpoints.load_into`). Loaded
encoders are kept in a small per-process LRU, so a long-lived worker loads a model once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from geo_dfm.errors import InputError
from geo_dfm.models import checkpoints
from geo_dfm.models.device import resolve_device, resolve_precision, set_cpu_threads
from geo_dfm.models.encoder import Encoder
from geo_dfm.models.registry import (
    DEFAULT_MODEL,
    OPENAI_MEAN,
    OPENAI_STD,
    ModelSpec,
    get_model_spec,
    is_registered,
)

log = logging.getLogger(__name__)

ENCODER_CACHE_SIZE = int(os.environ.get("GEO_DFM_MODEL_CACHE", "2"))
_cache: OrderedDict[tuple, Encoder] = OrderedDict()
_cache_lock = threading.RLock()
_custom_config_dir: tempfile.TemporaryDirectory | None = None


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    """What to build and which file to load into it (resolved before torch work starts)."""

    spec: ModelSpec
    weights: Path
    quick_gelu: bool | None = None
    preprocess: dict | None = None


def load_encoder(
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    model_config: str | os.PathLike[str] | None = None,
    adapter: str | os.PathLike[str] | None = None,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    *,
    quick_gelu: bool | None = None,
) -> Encoder:
    """The :class:`Encoder` for these arguments, loaded once per process.

    - ``model``: a registry name (default ``georsclip-vit-b-32``) or an open_clip architecture
      (then ``weights`` is required); ``weights`` overrides a registered model's file.
    - ``model_config``: an open_clip model config JSON (plain, or ``{"model_cfg": ..., "preprocess_cfg": ...}``)
      whose weights are ``weights``.
    - ``adapter``: a peft adapter folder (``save_pretrained``) applied on top and merged.
    - ``quick_gelu``: override the activation (``None`` keeps the registry's choice).
    - ``threads`` sets torch's CPU threads (process-wide) and is not part of the cache key.
    """
    set_cpu_threads(threads)
    torch_device = resolve_device(device)
    autocast_dtype = resolve_precision(precision, torch_device)
    plan = plan_load(model, weights, model_config, quick_gelu)
    adapter_dir = _check_adapter(adapter)
    key = (
        plan.spec,
        _file_identity(plan.weights),
        _file_identity(adapter_dir / "adapter_config.json") if adapter_dir else None,
        plan.quick_gelu,
        str(torch_device),
        autocast_dtype,
    )
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        encoder = _build_encoder(plan, adapter_dir, torch_device, autocast_dtype)
        _cache[key] = encoder
        while len(_cache) > max(ENCODER_CACHE_SIZE, 1):
            _cache.popitem(last=False)
        return encoder


def clear_encoder_cache() -> None:
    """Forget every loaded encoder (frees their memory once no one holds them)."""
    with _cache_lock:
        _cache.clear()


def plan_load(
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    model_config: str | os.PathLike[str] | None = None,
    quick_gelu: bool | None = None,
) -> LoadPlan:
    """Decide the architecture and find (or download) the weights file; no model is built here."""
    weights_path = _check_weights(weights) if weights is not None else None
    if model_config is not None:
        if model is not None:
            raise InputError("--model-config", "give either --model or --model-config, not both")
        if weights_path is None:
            raise InputError(
                "--model-config", "a custom model config needs its checkpoint: add --weights PATH"
            )
        config_path = Path(model_config)
        architecture, preprocess, input_size = register_custom_config(config_path)
        spec = _custom_spec(config_path.stem, architecture, weights_path, input_size, preprocess)
        return _with_activation(LoadPlan(spec, weights_path, quick_gelu, preprocess))
    name = model or DEFAULT_MODEL
    if is_registered(name):
        spec = get_model_spec(name)
        path = weights_path or checkpoints.resolve_weights(spec)
        return _with_activation(LoadPlan(spec, path, quick_gelu))
    architecture = _open_clip_architecture(name)
    if architecture is None:
        raise _unknown_model(name)
    if weights_path is None:
        raise InputError(
            "--model",
            f"{name!r} is an open_clip architecture, not a registered model: give its checkpoint with "
            "--weights PATH (or pick a registered model from 'geo-dfm models list')",
        )
    input_size = _config_input_size(architecture)
    spec = _custom_spec(architecture, architecture, weights_path, input_size, None)
    return _with_activation(LoadPlan(spec, weights_path, quick_gelu))


def build_model(architecture: str, quick_gelu: bool | None = None, meta: bool = False):
    """A randomly initialised open_clip model (``pretrained=None``; nothing is downloaded).

    ``meta=True`` builds on torch's meta device (no memory, instant): for inspecting structure.
    """
    import open_clip
    import torch

    from geo_dfm.models.configs import register_builtin_configs

    register_builtin_configs()
    extra = {} if quick_gelu is None else {"quick_gelu": quick_gelu}
    device = "meta" if meta else "cpu"
    with _quiet_open_clip(), torch.device(device) if meta else contextlib.nullcontext():
        return open_clip.create_model(
            architecture,
            pretrained=None,
            load_weights=False,
            pretrained_image=False,
            pretrained_text=False,
            device=device,
            **extra,
        )


def instantiate(
    architecture: str, state: dict, source: str | os.PathLike[str], quick_gelu: bool | None = None
):
    """The model ``architecture`` holding exactly the tensors of ``state`` (strict).

    Built on the meta device and given the checkpoint tensors directly, which skips the random
    initialisation (seconds for B/32, much more for H/14). The only tensors a checkpoint does
    not carry, the text causal masks, are rebuilt; anything else unexpected falls back to a
    normal build.
    """
    import torch

    model = build_model(architecture, quick_gelu, meta=True)
    checkpoints.load_into(model, dict(state), source, assign=True)
    for module in model.modules():
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_meta and name == "attn_mask" and buffer.dim() == 2:
                size = buffer.shape[0]
                mask = torch.empty(size, size).fill_(float("-inf")).triu_(1).to(buffer.dtype)
                setattr(module, name, mask)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        log.debug("%s: tensors beyond the checkpoint on meta; building normally", architecture)
        model = build_model(architecture, quick_gelu)
        checkpoints.load_into(model, dict(state), source)
    return model


def register_custom_config(path: Path) -> tuple[str, dict | None, int]:
    """Make open_clip know the config in ``path`` under a unique name; returns (name, preprocess, size)."""
    global _custom_config_dir
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read the model config: {exc}") from exc
    model_cfg = data.get("model_cfg", data) if isinstance(data, dict) else None
    preprocess = data.get("preprocess_cfg") if isinstance(data, dict) and "model_cfg" in data else None
    if not isinstance(model_cfg, dict) or not all(
        key in model_cfg for key in ("embed_dim", "vision_cfg", "text_cfg")
    ):
        raise InputError(path, "not an open_clip model config: it needs embed_dim, vision_cfg and text_cfg")
    image_size = model_cfg["vision_cfg"].get("image_size", 224)
    sizes = set(image_size) if isinstance(image_size, list) else {image_size}
    if len(sizes) != 1:
        raise InputError(path, f"only square inputs are supported, got image_size {image_size}")
    _check_preprocess(path, preprocess)
    import open_clip

    digest = hashlib.sha256(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()[:12]
    name = f"custom-{path.stem}-{digest}"
    if name not in open_clip.list_models():
        if _custom_config_dir is None:
            _custom_config_dir = tempfile.TemporaryDirectory(prefix="geo-dfm-configs-")
        target = Path(_custom_config_dir.name) / f"{name}.json"
        target.write_text(json.dumps(model_cfg), encoding="utf-8")
        open_clip.add_model_config(target)
    return name, preprocess, int(sizes.pop())


# --- internals --------------------------------------------------------------------------------------
def _build_encoder(plan: LoadPlan, adapter: Path | None, device, autocast_dtype) -> Encoder:
    import open_clip

    log.info("loading %s (%s) from %s", plan.spec.name, plan.spec.architecture, plan.weights)
    model = instantiate(
        plan.spec.architecture, checkpoints.read_checkpoint(plan.weights), plan.weights, plan.quick_gelu
    )
    if adapter is not None:
        model = _apply_adapter(model, adapter)
    model = model.eval().to(device)
    tokenizer = open_clip.get_tokenizer(plan.spec.architecture)
    image_size = model.visual.image_size
    input_size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
    return Encoder(
        model,
        tokenizer,
        plan.spec,
        device,
        autocast_dtype,
        weights=plan.weights,
        adapter=adapter,
        input_size=input_size,
        mean=plan.spec.mean,
        std=plan.spec.std,
    )


def _apply_adapter(model, adapter: Path):
    """``model`` with the peft adapter in ``adapter`` merged into its weights.

    Adapters written by ``geo-dfm finetune`` were trained on attention split into q/k/v/out linears
    (``geo_dfm_adapter.json`` says so): the same split is made before loading and undone after
    merging, so the result is a plain open_clip model. Any other peft adapter loads as peft saved it.
    """
    from geo_dfm.training.adapter_files import attach_adapter, merge_adapter

    try:
        peft_model = attach_adapter(model, adapter)
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise InputError(adapter, f"the adapter does not fit this model: {exc}") from exc
    try:
        return merge_adapter(peft_model)
    except Exception as exc:  # some adapter types cannot merge: run them unmerged
        log.info("adapter %s not merged (%s); running it unmerged", adapter, exc)
        return peft_model


def _with_activation(plan: LoadPlan) -> LoadPlan:
    """Name a forced activation in the spec's architecture (what summaries show); the build forces it."""
    if plan.quick_gelu is None or plan.quick_gelu == plan.spec.quick_gelu:
        return dataclasses.replace(plan, quick_gelu=None)
    import open_clip

    from geo_dfm.models.configs import register_builtin_configs

    register_builtin_configs()
    base = plan.spec.architecture.removesuffix("-quickgelu")
    label = f"{base}-quickgelu" if plan.quick_gelu else base
    architecture = label if label in open_clip.list_models() else plan.spec.architecture
    note = f"{plan.spec.notes} Activation forced to {'QuickGELU' if plan.quick_gelu else 'GELU'}.".strip()
    return dataclasses.replace(
        plan, spec=dataclasses.replace(plan.spec, architecture=architecture, notes=note)
    )


def _custom_spec(
    name: str, architecture: str, weights: Path, input_size: int, preprocess: dict | None
) -> ModelSpec:
    mean = tuple(preprocess.get("mean", OPENAI_MEAN)) if preprocess else OPENAI_MEAN
    std = tuple(preprocess.get("std", OPENAI_STD)) if preprocess else OPENAI_STD
    return ModelSpec(
        name=name,
        architecture=architecture,
        description=f"User checkpoint {weights.name} on open_clip architecture {architecture}.",
        family="custom",
        init="unknown",
        licence="Provided by the user.",
        local=str(weights),
        input_size=input_size,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        templates="rs105",
    )


def _check_preprocess(path: Path, preprocess: dict | None) -> None:
    if not preprocess:
        return
    if (
        preprocess.get("interpolation", "bicubic") != "bicubic"
        or preprocess.get("resize_mode", "shortest") != "shortest"
    ):
        raise InputError(
            path,
            "only bicubic shortest-side resize + centre crop preprocessing is supported (preprocess_cfg)",
        )


def _check_weights(weights: str | os.PathLike[str]) -> Path:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputError(path, "weights file not found")
    return path.resolve()


def _check_adapter(adapter: str | os.PathLike[str] | None) -> Path | None:
    if adapter is None:
        return None
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise InputError(
            path, "not a peft adapter folder (no adapter_config.json; save it with save_pretrained)"
        )
    return path.resolve()


def _file_identity(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def _open_clip_architecture(name: str) -> str | None:
    import open_clip

    from geo_dfm.models.configs import register_builtin_configs

    register_builtin_configs()
    candidate = name.replace("/", "-")
    return candidate if candidate in open_clip.list_models() else None


def _config_input_size(architecture: str) -> int:
    import open_clip

    size = open_clip.get_model_config(architecture)["vision_cfg"].get("image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _unknown_model(name: str) -> InputError:
    import open_clip

    from geo_dfm.models.registry import list_model_specs

    names = [spec.name for spec in list_model_specs()] + open_clip.list_models()
    close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return InputError(
        "--model",
        f"unknown model {name!r}: neither a registered model ('geo-dfm models list') "
        f"nor an open_clip architecture.{hint}",
    )


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip warns that a model built with ``pretrained=None`` is random: we load weights next."""
    root = logging.getLogger()
    flt = _DropRandomInitWarning()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)
