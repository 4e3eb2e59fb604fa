"""Checkpoint files: safe reading, unwrapping, strict loading, and finding or downloading them.

Reading never unpickles arbitrary Python: ``.pt``/``.pth``/``.bin`` go through
``torch.load(weights_only=True)`` and ``.safetensors`` through safetensors. A training checkpoint
(``{"state_dict": {...}}``, keys prefixed ``module.``) is unwrapped. Loading into a model is
strict: missing, unexpected or mis-shaped keys are an :class:`InputError` that lists them.

Published weights live in the standard Hugging Face cache (``HF_HUB_CACHE``/``HF_HOME``) or, for
zip releases (SkyCLIP), in ``$GEO_DFM_CACHE/weights/<model>/`` (default ``~/.cache/geo-dfm``).
Offline (``HF_HUB_OFFLINE=1``, or the host unreachable) a missing file is a
:class:`WeightsNotFoundError` at once, with the file to get and where to put it.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from geo_dfm.errors import InputError, WeightsNotFoundError
from geo_dfm.models.registry import ModelSpec

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
MAX_LISTED_KEYS = 12


# --- reading files ------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped (``state_dict``, ``module.``), on the CPU."""
    import torch

    file = Path(path)
    if not file.is_file():
        raise InputError(file, "checkpoint file not found")
    if file.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            raw: object = load_file(str(file), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(file, f"not a readable .safetensors file: {exc}") from exc
    else:
        try:
            raw = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"GLOBAL (\S+)", str(exc))
            if found or "allowed global" in str(exc).lower():
                what = f" ({found.group(1)})" if found else ""
                raise InputError(
                    file,
                    f"refused: the checkpoint contains pickled Python objects{what}, not only tensors. "
                    "geo-dfm loads checkpoints with weights_only=True and never runs code from a file; "
                    "save the model's state_dict() (or a .safetensors file) instead.",
                ) from exc
            raise InputError(file, "not a PyTorch checkpoint (unreadable pickle data)") from exc
        except RuntimeError as exc:
            if "torchscript" in str(exc).lower():
                raise InputError(
                    file,
                    "a TorchScript archive (like OpenAI's original CLIP .pt files) is not supported; use a "
                    "registered model (e.g. clip-vit-b-32-openai) or save the model's state_dict()",
                ) from exc
            raise InputError(file, f"not a readable PyTorch checkpoint: {exc}") from exc
        except (KeyError, EOFError, ValueError, OSError) as exc:
            raise InputError(file, f"not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    return unwrap_state_dict(raw, file)


def unwrap_state_dict(raw: object, source: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A plain ``{name: tensor}`` dict from a state dict or an open_clip training checkpoint."""
    import torch

    if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not raw:
        raise InputError(source, "the checkpoint holds no state dict (expected a dict of tensors)")
    not_tensors = [str(key) for key, value in raw.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise InputError(
            source, f"the checkpoint is not a model state dict: non-tensor entries {_listing(not_tensors)}"
        )
    state = {str(key): value for key, value in raw.items()}
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = f" … and {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else ""
    return f"{shown}{more}"


def load_into(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    source: str | os.PathLike[str],
    assign: bool = False,
) -> None:
    """Load ``state`` into ``model`` strictly; a mismatch is an :class:`InputError` listing keys.

    ``assign=True`` makes the checkpoint tensors the model's (cast to the model's dtypes): for a
    model built on the meta device, so no time is spent initialising weights that are replaced.
    """
    expected = model.state_dict()
    scale, model_scale = state.get("logit_scale"), expected.get("logit_scale")
    if scale is not None and model_scale is not None and scale.numel() == model_scale.numel() == 1:
        state["logit_scale"] = state["logit_scale"].reshape(expected["logit_scale"].shape)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mis_shaped = [
        f"{key} {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
        if mis_shaped:
            parts.append(f"{len(mis_shaped)} keys with other shapes: {_listing(mis_shaped)}")
        raise InputError(
            source,
            "the checkpoint does not fit the model architecture (wrong --model or --model-config?): "
            + "; ".join(parts),
        )
    if assign:
        state = {key: value.to(expected[key].dtype) for key, value in state.items()}
    model.load_state_dict(state, strict=True, assign=assign)


# --- where files live ----------------------------------------------------------------------------
def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (as huggingface_hub does at import)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def geo_dfm_cache_dir() -> Path:
    """geo-dfm's own cache (weights from zip releases): ``$GEO_DFM_CACHE`` or ``~/.cache/geo-dfm``."""
    explicit = os.environ.get("GEO_DFM_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "geo-dfm"


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``GEO_DFM_OFFLINE``) is set."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "GEO_DFM_OFFLINE")
    )


def _host_reachable(url: str, timeout: float = 1.5) -> bool:
    """A quick TCP check, so that a machine without network fails in a second, not after retries."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy decides; let the download try
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hf_candidates(spec: ModelSpec) -> list[str]:
    return [name for name in (spec.safetensors_filename, spec.filename) if name]


def _archive_target(spec: ModelSpec) -> Path:
    return (
        geo_dfm_cache_dir()
        / "weights"
        / spec.name
        / (spec.archive_member or Path(urlparse(spec.url or "").path).name)
    )


def cached_weights(spec: ModelSpec) -> Path | None:
    """The local weights file of ``spec`` if it is already on this machine (no network)."""
    if spec.hf_repo is not None:
        from huggingface_hub import try_to_load_from_cache

        for filename in _hf_candidates(spec):
            found = try_to_load_from_cache(spec.hf_repo, filename, cache_dir=hf_cache_dir())
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
        return None
    if spec.url is not None:
        target = _archive_target(spec)
        return target if target.is_file() else None
    return None


def download_url(spec: ModelSpec) -> str:
    """The URL a user can fetch the weights from by hand."""
    if spec.hf_repo is not None:
        return f"{_hf_endpoint()}/{spec.hf_repo}/resolve/main/{spec.filename}"
    return spec.url or ""


def missing_weights_error(spec: ModelSpec, reason: str) -> WeightsNotFoundError:
    """One message: which file is missing, why it cannot be fetched now, and how to provide it."""
    size = f" ({spec.download_mb} MB)" if spec.download_mb else ""
    if spec.hf_repo is not None:
        where = f"the Hugging Face cache {hf_cache_dir()}"
        what = f"file {spec.filename}{size} of {_hf_endpoint()}/{spec.hf_repo}"
        copy = f"copy its folder {hf_cache_dir() / ('models--' + spec.hf_repo.replace('/', '--'))} here"
    else:
        where = str(_archive_target(spec))
        member = f", file {spec.archive_member} inside the zip" if spec.archive_member else ""
        what = f"{download_url(spec)}{size}{member}"
        copy = f"put {spec.archive_member or 'the file'} at {where}"
    unzip = ", unzip it," if spec.archive_member else ""
    return WeightsNotFoundError(
        spec.name,
        f"weights not found: {what} is not in {where} and cannot be downloaded now ({reason}). "
        f"On a machine with internet run 'geo-dfm models download {spec.name}' and {copy}, "
        f"or download {download_url(spec)} yourself{unzip} and pass --model {spec.name} --weights PATH.",
    )


def resolve_weights(spec: ModelSpec, download: bool = True) -> Path:
    """The local weights file of ``spec``: cached, built (toy), or downloaded when allowed and online."""
    if spec.local == "toy":
        from geo_dfm.synthetic import ensure_toy_model

        return Path(ensure_toy_model())
    found = cached_weights(spec)
    if found is not None:
        return found
    if is_offline():
        raise missing_weights_error(spec, "offline: HF_HUB_OFFLINE is set")
    if not download:
        raise missing_weights_error(spec, "downloads are switched off")
    return download_weights(spec)


#: ``on_bytes(done, total)``: download progress in bytes (total ``None`` when unknown).
BytesCallback = Callable[[int, "int | None"], None]


def _progress_bar(on_bytes: BytesCallback | None):
    """A tqdm class for downloads that also reports its counts to ``on_bytes``."""
    from tqdm import tqdm

    if on_bytes is None:
        return tqdm

    class ReportingBar(tqdm):  # type: ignore[misc, valid-type]
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            on_bytes(int(self.n), int(self.total) if self.total else None)
            return shown

    return ReportingBar


def download_weights(spec: ModelSpec, on_bytes: BytesCallback | None = None) -> Path:
    """Fetch the weights of ``spec`` into the cache (with a progress bar on stderr; ``on_bytes`` also
    receives the byte counts) and return the file."""
    if spec.local == "toy":
        return resolve_weights(spec)
    found = cached_weights(spec)
    if found is not None:
        return found
    if is_offline():
        raise missing_weights_error(spec, "offline: HF_HUB_OFFLINE is set")
    host = _hf_endpoint() if spec.hf_repo is not None else (spec.url or "")
    if not _host_reachable(host):
        raise missing_weights_error(spec, f"{urlparse(host).hostname} is not reachable from this machine")
    if spec.hf_repo is not None:
        return _download_hf(spec, on_bytes)
    return _download_archive(spec, on_bytes)


def _download_hf(spec: ModelSpec, on_bytes: BytesCallback | None = None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    assert spec.hf_repo is not None
    candidates = _hf_candidates(spec)
    for index, filename in enumerate(candidates):
        try:
            path = hf_hub_download(
                spec.hf_repo,
                filename,
                cache_dir=hf_cache_dir(),
                local_files_only=is_offline(),
                tqdm_class=_progress_bar(on_bytes),
            )
            return Path(path)
        except LocalEntryNotFoundError as exc:  # before EntryNotFoundError: it is a subclass
            raise missing_weights_error(spec, f"no connection to the Hub: {exc}") from None
        except EntryNotFoundError:
            if index + 1 < len(candidates):
                continue  # the safetensors variant does not exist: take the pickle
            raise missing_weights_error(spec, f"{filename} is not in {spec.hf_repo}") from None
        except HfHubHTTPError as exc:
            raise missing_weights_error(spec, f"the Hub answered: {exc}") from None
        except Exception as exc:  # network stack errors (httpx, ssl) differ between versions
            raise missing_weights_error(spec, f"download failed: {type(exc).__name__}: {exc}") from None
    raise missing_weights_error(spec, "no file to download")  # pragma: no cover - specs always name one


def _download_archive(spec: ModelSpec, on_bytes: BytesCallback | None = None) -> Path:
    """Download a (zip) release, keep only the checkpoint member, atomically."""
    import urllib.request

    from tile_tools.atomic import atomic_file

    tqdm = _progress_bar(on_bytes)
    assert spec.url is not None
    target = _archive_target(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        archive = Path(tmp) / Path(urlparse(spec.url).path).name
        try:
            with urllib.request.urlopen(spec.url, timeout=30) as response, archive.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=spec.name, leave=False) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
        except OSError as exc:
            raise missing_weights_error(spec, f"download failed: {exc}") from None
        with atomic_file(target) as tmp_target:
            if spec.archive_member and zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    member = _find_member(zf, spec.archive_member)
                    if member is None:
                        raise missing_weights_error(
                            spec, f"{spec.archive_member} is not inside {archive.name}"
                        )
                    with zf.open(member) as src, tmp_target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            else:
                shutil.move(str(archive), tmp_target)
    return target


def _find_member(archive: zipfile.ZipFile, name: str) -> str | None:
    matches = [m for m in archive.namelist() if m == name or m.endswith("/" + name)]
    return min(matches, key=len) if matches else None
