"""Model-management jobs for other programs (the QGIS plugin through the worker): list the registry with
download state, download one model's weights in the background."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from geo_dfm.jobs.params import param
from geo_dfm.progress import Progress


@dataclass(frozen=True)
class ListModelsParams:
    """No parameters: every registered model."""


@dataclass(frozen=True)
class DownloadModelParams:
    """Which registered model to download."""

    name: str = param(help="Registered model name (see list-models).")


def model_info() -> list[dict[str, Any]]:
    """One JSON-ready dict per registered model: name, architecture, family, input size, whether it
    suits dense (patch-level) maps, whether its weights are on this machine, licence, description."""
    from geo_dfm.models.checkpoints import cached_weights
    from geo_dfm.models.registry import DEFAULT_MODEL, list_model_specs

    rows = []
    for spec in list_model_specs():
        rows.append(
            {
                "name": spec.name,
                "architecture": spec.architecture,
                "family": spec.family,
                "input_size": spec.input_size,
                "dense": bool(getattr(spec, "dense", False)),
                "downloaded": bool(spec.local) or cached_weights(spec) is not None,
                "licence": spec.licence,
                "description": spec.description,
                "default": spec.name == DEFAULT_MODEL,
            }
        )
    return rows


def run_list_models(params: ListModelsParams, progress: Progress) -> dict[str, Any]:
    """Summary ``{"command": "list-models", "models": [...]}`` (see :func:`model_info`)."""
    progress.stage("list models")
    return {"command": "list-models", "models": model_info()}


def run_download_model(params: DownloadModelParams, progress: Progress) -> dict[str, Any]:
    """Download the weights of ``params.name`` (already cached: nothing to do) and report the file.

    The download runs in a helper thread so a cancel request ends the job at once (the Hugging Face
    client keeps its partial file and resumes it on the next download); progress events count bytes.
    """
    from geo_dfm.models.checkpoints import download_weights
    from geo_dfm.models.registry import get_model_spec

    spec = get_model_spec(params.name)
    progress.stage(f"download {spec.name}")
    outcome: dict[str, Any] = {}
    counts = {"done": 0, "total": None}

    def on_bytes(done: int, total: int | None) -> None:  # called in the download thread
        counts["done"], counts["total"] = done, total

    def fetch() -> None:
        try:
            outcome["path"] = download_weights(spec, on_bytes)
        except BaseException as exc:  # reported in the job thread
            outcome["error"] = exc

    worker = threading.Thread(target=fetch, name=f"download-{spec.name}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        if counts["total"] and progress.total != counts["total"]:
            progress.set_total(int(counts["total"]))
        if counts["done"] > progress.done:
            progress.advance(int(counts["done"]) - progress.done)  # bytes; also checks for a cancel
        progress.check_cancelled()
    if "error" in outcome:
        raise outcome["error"]
    return {"command": "download-model", "model": spec.name, "path": str(outcome["path"])}
