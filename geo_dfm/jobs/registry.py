"""The job registry: job name → parameter dataclass → run function, read by every front end.

The CLI, the worker (protocol 2 requests ``{"id", "job", "params"}``), the batch engine and the QGIS
plugin (through the worker's ``ready`` event) all find jobs here, so a job exists once. Entries name
their classes and functions as ``"module:attribute"`` strings and import them on first use: reading the
registry never imports torch.

A run function has the shape ``run(params, progress) -> summary dict``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from geo_dfm.jobs.params import params_from_mapping, params_schema
from geo_dfm.progress import Progress
from tile_tools.errors import InputError


def _load(reference: Any) -> Any:
    """``"module:attribute"`` imported on first use (anything else is already the object)."""
    if not isinstance(reference, str):
        return reference
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class JobEntry:
    """One job: its ``name``, a one-line ``summary``, and where its parameters and run function live
    (``"module:attribute"`` strings, or the objects themselves)."""

    name: str
    summary: str
    params_ref: Any
    run_ref: Any

    @property
    def params(self) -> type:
        """The frozen parameter dataclass."""
        return _load(self.params_ref)

    @property
    def run(self) -> Callable[[Any, Progress], dict[str, Any]]:
        """``run(params, progress) -> summary``."""
        return _load(self.run_ref)

    def make_params(self, values: Any) -> Any:
        """``values`` as this job's parameter object (a mapping is checked field by field)."""
        cls = self.params
        if isinstance(values, cls):
            return values
        return params_from_mapping(cls, values or {})

    def describe(self) -> dict[str, Any]:
        """What the worker's ``ready`` event says about the job."""
        return {"summary": self.summary, "params": params_schema(self.params)}


_ENTRIES = (
    JobEntry(
        "chips",
        "Cut a scene into georeferenced chips and an index GeoPackage.",
        "geo_dfm.jobs.chips:ChipsParams",
        "geo_dfm.jobs.chips:run_chips",
    ),
    JobEntry(
        "localize",
        "Text-query heatmaps (semantic localization) over a scene.",
        "geo_dfm.jobs.localize:LocalizeParams",
        "geo_dfm.jobs.localize:run_localize",
    ),
    JobEntry(
        "classify",
        "Zero-shot land-cover labels and a class map for a scene.",
        "geo_dfm.jobs.classify:ClassifyParams",
        "geo_dfm.jobs.classify:run_classify",
    ),
    JobEntry(
        "search",
        "Find the chips that best match a text, across scenes.",
        "geo_dfm.jobs.search:SearchParams",
        "geo_dfm.jobs.search:run_search",
    ),
    JobEntry(
        "finetune",
        "Fine-tune a domain model on image-text pairs (LoRA, IA3, LoHa, OFT, full, one tower).",
        "geo_dfm.jobs.finetune:FinetuneParams",
        "geo_dfm.jobs.finetune:run_finetune",
    ),
    JobEntry(
        "pairs",
        "Training pairs (chips + captions) from a scene and its labelled polygons.",
        "geo_dfm.jobs.pairs:PairsParams",
        "geo_dfm.jobs.pairs:run_pairs",
    ),
    JobEntry(
        "pairs-filter",
        "Keep the remote-sensing pairs of a generic image-text set (the RS5M filter).",
        "geo_dfm.jobs.pairs:PairsFilterParams",
        "geo_dfm.jobs.pairs:run_pairs_filter",
    ),
    JobEntry(
        "eval-zeroshot",
        "Zero-shot accuracy on an ImageFolder benchmark (AID, RESISC45, EuroSAT, any folder).",
        "geo_dfm.evaluation.jobs:EvalZeroShotParams",
        "geo_dfm.evaluation.jobs:run_eval_zeroshot",
    ),
    JobEntry(
        "eval-retrieval",
        "Image-text retrieval recall (RSICD, RSITMD, any caption CSV).",
        "geo_dfm.evaluation.jobs:EvalRetrievalParams",
        "geo_dfm.evaluation.jobs:run_eval_retrieval",
    ),
    JobEntry(
        "eval-selo",
        "Semantic localization metrics (Rsu, Ras, Rda, Rmi) on AIR-SLT.",
        "geo_dfm.evaluation.jobs:EvalSeloParams",
        "geo_dfm.evaluation.jobs:run_eval_selo",
    ),
    JobEntry(
        "eval-all",
        "The paper's whole evaluation table for one model.",
        "geo_dfm.evaluation.jobs:EvalAllParams",
        "geo_dfm.evaluation.jobs:run_eval_all",
    ),
    JobEntry(
        "generate",
        "Remote-sensing images from text prompts (GeoRSSD, optional extra).",
        "geo_dfm.jobs.generate:GenerateParams",
        "geo_dfm.jobs.generate:run_generate",
    ),
    JobEntry(
        "annotate",
        "Classify and/or localize many scenes, resumable, on a local pool or a Dask cluster.",
        "geo_dfm.jobs.annotate:AnnotateParams",
        "geo_dfm.jobs.annotate:run_annotate",
    ),
    JobEntry(
        "list-models",
        "The registered models with their download state.",
        "geo_dfm.jobs.model_jobs:ListModelsParams",
        "geo_dfm.jobs.model_jobs:run_list_models",
    ),
    JobEntry(
        "download-model",
        "Download a registered model's weights into the Hugging Face cache.",
        "geo_dfm.jobs.model_jobs:DownloadModelParams",
        "geo_dfm.jobs.model_jobs:run_download_model",
    ),
)

JOBS: dict[str, JobEntry] = {entry.name: entry for entry in _ENTRIES}


def register_job(entry: JobEntry) -> None:
    """Add (or replace) a job entry."""
    JOBS[entry.name] = entry


def get_job(name: str) -> JobEntry:
    """The entry of job ``name``; an unknown name is an :class:`InputError` listing the jobs."""
    try:
        return JOBS[name]
    except KeyError:
        raise InputError("job", f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


def run_job_by_name(name: str, params: Mapping[str, Any] | Any, progress: Progress) -> dict[str, Any]:
    """Run a registered job from its name and parameters (a mapping or the parameter object)."""
    entry = get_job(name)
    return entry.run(entry.make_params(params), progress)


def describe_jobs() -> dict[str, dict[str, Any]]:
    """Every job's summary and parameter schema (for the worker's ``ready`` event)."""
    return {name: entry.describe() for name, entry in JOBS.items()}


def job_names() -> list[str]:
    return list(JOBS)


__all__ = [
    "JOBS",
    "JobEntry",
    "describe_jobs",
    "get_job",
    "job_names",
    "register_job",
    "run_job_by_name",
]
