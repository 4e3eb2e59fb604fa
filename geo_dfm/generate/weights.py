"""Pipeline folders: the published ones through the Hugging Face cache, or a local folder.

A registered pipeline lives in the standard Hugging Face cache (``HF_HUB_CACHE``/``HF_HOME``, read at
call time by :func:`geo_dfm.models.checkpoints.hf_cache_dir`) like every other model geo-dfm uses; only
its subfolder is downloaded (``snapshot_download(allow_patterns=...)``), never the whole repository.
Offline (``HF_HUB_OFFLINE=1``) a missing folder is a :class:`WeightsNotFoundError` at once, naming the
folder and how to get it. A local folder (``--weights``) must hold a diffusers
``StableDiffusionPipeline``: ``model_index.json`` and its component subfolders.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from geo_dfm.errors import InputError, WeightsNotFoundError
from geo_dfm.generate.registry import GeneratorSpec
from geo_dfm.models.checkpoints import hf_cache_dir, is_offline

log = logging.getLogger(__name__)

PIPELINE_CLASS = "StableDiffusionPipeline"
#: Components a text-to-image run needs (``feature_extractor`` and ``safety_checker`` are optional).
REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def check_pipeline_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder`` as an absolute path if it holds a Stable Diffusion pipeline; else an :class:`InputError`."""
    path = Path(folder).expanduser().absolute()
    if not path.is_dir():
        raise InputError(
            path, "pipeline folder not found (expected a diffusers folder with model_index.json)"
        )
    index = path / "model_index.json"
    if not index.is_file():
        raise InputError(path, "not a diffusers pipeline folder: model_index.json is missing")
    try:
        config = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(index, f"unreadable model_index.json: {exc}") from exc
    if not isinstance(config, dict):
        raise InputError(index, "model_index.json is not a JSON object")
    kind = config.get("_class_name")
    if kind != PIPELINE_CLASS:
        raise InputError(index, f"a {kind!r} pipeline; geo-dfm generate runs a {PIPELINE_CLASS}")
    missing = [name for name in REQUIRED_COMPONENTS if not (path / name).is_dir()]
    if missing:
        raise InputError(path, f"incomplete pipeline folder: missing {', '.join(missing)}")
    return path


def _hf_endpoint() -> str:
    """``HF_ENDPOINT`` read at call time (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _cache_repo_folder(spec: GeneratorSpec) -> Path:
    return hf_cache_dir() / ("models--" + spec.hf_repo.replace("/", "--"))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def missing_pipeline_error(spec: GeneratorSpec, reason: str) -> WeightsNotFoundError:
    """Which folder is missing, why it cannot be fetched now, and the ways to provide it."""
    return WeightsNotFoundError(
        spec.name,
        f"pipeline not found: folder {spec.subfolder} of {_hf_endpoint()}/{spec.hf_repo} is not in the "
        f"Hugging Face cache {hf_cache_dir()} and cannot be downloaded now ({reason}). On a machine with "
        f"internet run: hf download {spec.hf_repo} --include '{spec.subfolder}/*' (or any "
        f"'geo-dfm generate --model {spec.name}' run), then copy {_cache_repo_folder(spec)} to the same "
        "place here; or pass --weights FOLDER, a local diffusers pipeline folder (with model_index.json).",
    )


def _snapshot(spec: GeneratorSpec, local_files_only: bool) -> Path:
    """The cached snapshot root of ``spec``'s repository holding (only) its subfolder."""
    from huggingface_hub import snapshot_download

    root = snapshot_download(
        spec.hf_repo,
        revision=spec.revision,
        allow_patterns=[f"{spec.subfolder}/*"],
        cache_dir=hf_cache_dir(),
        local_files_only=local_files_only,
        endpoint=_hf_endpoint(),
    )
    return Path(root)


def cached_pipeline_folder(spec: GeneratorSpec) -> Path | None:
    """The pipeline folder of ``spec`` if the Hugging Face cache already holds it (no network)."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        root = _snapshot(spec, local_files_only=True)
    except LocalEntryNotFoundError:
        return None
    # The cached snapshot may hold other folders of the repository but not this one.
    folder = root / spec.subfolder
    return folder if (folder / "model_index.json").is_file() else None


def resolve_pipeline_folder(spec: GeneratorSpec, download: bool = True) -> Path:
    """The local pipeline folder of ``spec``: cached, or downloaded (that subfolder only) when allowed."""
    found = cached_pipeline_folder(spec)
    if found is not None:
        return check_pipeline_folder(found)
    if is_offline():
        raise missing_pipeline_error(spec, "offline: HF_HUB_OFFLINE is set")
    if not download:
        raise missing_pipeline_error(spec, "downloads are switched off")
    return check_pipeline_folder(download_pipeline_folder(spec))


def download_pipeline_folder(spec: GeneratorSpec) -> Path:
    """Download the subfolder of ``spec`` into the Hugging Face cache (progress bar on stderr)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    log.warning("downloading %s (%s) into %s", spec.name, spec.source, hf_cache_dir())
    try:
        root = _snapshot(spec, local_files_only=False)
    except LocalEntryNotFoundError as exc:
        raise missing_pipeline_error(spec, f"no connection to the Hub: {_one_line(exc)}") from None
    except HfHubHTTPError as exc:
        raise missing_pipeline_error(spec, f"the Hub answered: {_one_line(exc)}") from None
    except Exception as exc:  # network stack errors (httpx, ssl) differ between versions
        raise missing_pipeline_error(
            spec, f"download failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from None
    folder = root / spec.subfolder
    if not (folder / "model_index.json").is_file():
        raise missing_pipeline_error(spec, f"{spec.subfolder}/model_index.json is not in {spec.hf_repo}")
    return folder
