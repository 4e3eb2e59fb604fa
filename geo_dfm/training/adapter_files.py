"""Trained weights on disk: a peft adapter folder, or full open_clip weights, and loading them back.

An adapter folder is what peft's ``save_pretrained`` writes (``adapter_config.json``,
``adapter_model.safetensors``) plus ``geo_dfm_adapter.json`` (how to put it on a model: the attention
layout it was trained on) and ``geo_dfm_extra.safetensors`` (tensors outside peft's reach: the
learned temperature). Full weights and merged adapters are one ``model.safetensors`` with open_clip's
own key names (attention fused back into ``nn.MultiheadAttention``), loadable with ``--weights``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geo_dfm.training.attention import fuse_attention, has_split_attention, split_attention
from geo_dfm.training.methods import PreparedModel

ADAPTER_LAYOUT_FILE = "geo_dfm_adapter.json"
EXTRA_TENSORS_FILE = "geo_dfm_extra.safetensors"
ADAPTER_LAYOUT_FORMAT = 1


def save_adapter(prepared: PreparedModel, folder: Path) -> list[Path]:
    """Write the adapter of ``prepared`` into ``folder``; returns the files written."""
    from safetensors.torch import save_file

    if not prepared.is_adapter:
        raise ValueError(f"method {prepared.method!r} has no adapter; use save_full_weights")
    prepared.model.save_pretrained(str(folder))
    extra = {"logit_scale": prepared.model.logit_scale.detach().cpu().clone().contiguous()}
    save_file(extra, str(folder / EXTRA_TENSORS_FILE))
    layout = {
        "format": ADAPTER_LAYOUT_FORMAT,
        "attention": "split" if has_split_attention(prepared.model) else "fused",
        "method": prepared.method,
        "extra_tensors": EXTRA_TENSORS_FILE,
    }
    (folder / ADAPTER_LAYOUT_FILE).write_text(json.dumps(layout, indent=2) + "\n", encoding="utf-8")
    return sorted(path for path in folder.iterdir() if path.is_file())


def export_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The open_clip state dict of ``model`` with any adapter merged and attention fused (a copy;
    ``model`` is unchanged), as contiguous CPU tensors."""
    plain = copy.deepcopy(model)
    if hasattr(plain, "merge_and_unload"):
        plain = plain.merge_and_unload()
    fuse_attention(plain)
    return {name: tensor.detach().cpu().contiguous() for name, tensor in plain.state_dict().items()}


def save_full_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """``model`` (adapter merged) as one open_clip ``.safetensors`` state dict."""
    from safetensors.torch import save_file

    save_file(export_state_dict(model), str(path), metadata=metadata)
    return path


def read_adapter_layout(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's ``geo_dfm_adapter.json`` (None for an adapter geo-dfm did not write)."""
    path = Path(folder) / ADAPTER_LAYOUT_FILE
    if not path.is_file():
        return None
    layout = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(layout, dict) or layout.get("format") != ADAPTER_LAYOUT_FORMAT:
        raise ValueError(f"{path}: unknown geo-dfm adapter layout")
    return layout


def attach_adapter(model: nn.Module, folder: str | os.PathLike[str]) -> nn.Module:
    """``model`` with the adapter in ``folder`` applied, unmerged (a peft model).

    The attention is split first when the adapter was trained on split attention; the learned
    temperature is restored. Errors from peft (an adapter for another model) propagate.
    """
    from peft import PeftModel
    from safetensors.torch import load_file

    layout = read_adapter_layout(folder) or {}
    if layout.get("attention") == "split":
        split_attention(model)
    peft_model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    extra = Path(folder) / layout.get("extra_tensors", EXTRA_TENSORS_FILE)
    if layout and extra.is_file():
        tensors = load_file(str(extra))
        if "logit_scale" in tensors:
            with torch.no_grad():
                peft_model.logit_scale.copy_(tensors["logit_scale"])
    return peft_model


def merge_adapter(peft_model: nn.Module) -> nn.Module:
    """The plain open_clip model: adapter merged into the weights, attention fused back."""
    merged = peft_model.merge_and_unload()
    fuse_attention(merged)
    return merged
