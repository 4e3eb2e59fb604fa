"""The evaluation jobs (``geo-dfm eval …``): ``run_eval_*(params, progress) -> summary``.

Each writes one output folder through the job spine (:func:`geo_dfm.jobs.pipeline.start_job`: a
temporary twin renamed into place at the end, nothing left behind on failure):

- ``results.md`` / ``results.csv``: our numbers beside the published ones and the difference;
- zero-shot: ``per_class.csv``, ``confusion.csv``, ``confusion.png``, ``predictions.csv``;
- SeLo: ``samples.csv`` (per sample), ``maps/<index>.tif`` with ``save_maps``;
- ``eval all``: one sub-folder per benchmark with those files, the whole table at the top;
- ``summary.json``: the job summary with ``results`` and ``comparison``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_dfm.evaluation.air_slt import read_air_slt
from geo_dfm.evaluation.datasets import (
    RETRIEVAL_DATASETS,
    ZEROSHOT_DATASETS,
    caption_paths,
    read_caption_csv,
    read_image_folder,
)
from geo_dfm.evaluation.embedding_cache import EmbeddingCache, default_cache_dir
from geo_dfm.evaluation.plots import write_confusion_png
from geo_dfm.evaluation.published import rows_for
from geo_dfm.evaluation.retrieval import RetrievalResult, evaluate_retrieval
from geo_dfm.evaluation.selo import SeloResult, evaluate_selo
from geo_dfm.evaluation.tables import (
    RETRIEVAL_METRICS,
    SELO_METRICS,
    ZEROSHOT_METRICS,
    comparison_rows,
    pick,
    write_comparison,
    write_confusion_csv,
    write_rows_csv,
)
from geo_dfm.evaluation.test_data import find_test_data
from geo_dfm.evaluation.zeroshot import ZeroShotResult, evaluate_zeroshot
from geo_dfm.jobs.params import ModelParams, param
from geo_dfm.jobs.pipeline import JobRun, start_job
from geo_dfm.progress import Progress

ZEROSHOT_NAMES = {"aid": "AID", "resisc45": "RESISC45", "eurosat": "EuroSAT"}
RETRIEVAL_NAMES = {"rsitmd": "RSITMD", "rsicd": "RSICD"}


@dataclass(frozen=True, kw_only=True)
class EvalCommon:
    """What every evaluation job shares (mixed into each job's parameters)."""

    output: str = param(help="Output folder.")
    overwrite: bool = param(False, help="Replace an existing output folder.")
    cache: str | None = param(None, help="Embedding cache folder (default: $GEO_DFM_CACHE/eval-embeddings).")
    no_cache: bool = param(False, help="Do not read or write cached image embeddings.")
    workers: int = param(2, help="Threads decoding images.")
    published: str | None = param(None, help="Published row to compare with (default: the model's own).")
    model: ModelParams = param(default_factory=ModelParams, help="The model to evaluate.")


@dataclass(frozen=True, kw_only=True)
class EvalZeroShotParams(EvalCommon):
    dataset_dir: str = param(help="ImageFolder dataset: one folder of images per class.")
    dataset: str = param("folder", help="Dataset rules and published numbers.", choices=ZEROSHOT_DATASETS)
    classnames: tuple[str, ...] | None = param(None, help="Class names for the prompts, one per folder.")
    templates: str = param("rs105", help="Prompt templates: rs105, remoteclip, skyclip, none or a file.")


@dataclass(frozen=True, kw_only=True)
class EvalRetrievalParams(EvalCommon):
    dataset_dir: str = param(help="Folder of the caption table and images.")
    dataset: str = param("csv", help="rsitmd, rsicd (gb18030) or csv.", choices=RETRIEVAL_DATASETS)
    csv: str | None = param(None, help="Caption table (columns filename,title).")
    images: str | None = param(None, help="Images folder.")
    encoding: str | None = param(None, help="Text encoding of the caption table.")


@dataclass(frozen=True, kw_only=True)
class EvalSeloParams(EvalCommon):
    air_slt_dir: str = param(help="AIR-SLT folder (annotations/anno.json, imgs/).")
    method: str = param("selo", help="localize method making the maps (selo, blend, …).")
    exact: bool = param(False, help="The reference's JPEG round trips (method selo).")
    scales: str | None = param(None, help="SeLo window sizes in pixels (default 256,512,768).")
    maps: str | None = param(None, help="Score these maps instead (one grey image per sample index).")
    save_maps: bool = param(False, help="Keep each scored map as maps/<index>.tif.")


@dataclass(frozen=True, kw_only=True)
class EvalAllParams(EvalCommon):
    test_data_dir: str = param(help="Unzipped rs5m_test_data folder.")
    only: tuple[str, ...] | None = param(
        None, help="Benchmarks to run (AID, RESISC45, EuroSAT, RSITMD, RSICD, AIR-SLT)."
    )
    templates: str = param("rs105", help="Prompt templates for the zero-shot benchmarks.")
    method: str = param("selo", help="localize method for AIR-SLT.")
    exact: bool = param(False, help="The reference's JPEG round trips (method selo).")
    save_maps: bool = param(False, help="Keep the AIR-SLT maps.")


# --- jobs ---------------------------------------------------------------------------------------------


def run_eval_zeroshot(params: EvalZeroShotParams, progress: Progress) -> dict[str, Any]:
    """Zero-shot accuracy of one ImageFolder dataset."""
    read_image_folder(params.dataset_dir, params.dataset)  # bad input is reported before the model loads
    with _start("eval zeroshot", params, progress, params.dataset_dir) as job:
        encoder = job.load_encoder(params.model)
        with job.stage("zero-shot"):
            result = _zeroshot(encoder, params, params.dataset_dir, params.dataset, params.templates, job)
        name = ZEROSHOT_NAMES.get(params.dataset, result.root.name)
        outputs = write_zeroshot_files(job, "", result)
        measured = {name: pick(result.as_dict(), ZEROSHOT_METRICS)}
        return _finish(
            job, params, encoder, measured, {name: result.as_dict()}, outputs, f"Zero-shot: {name}"
        )


def run_eval_retrieval(params: EvalRetrievalParams, progress: Progress) -> dict[str, Any]:
    """Retrieval recall of one caption dataset."""
    csv_path, images_dir, encoding = caption_paths(
        params.dataset_dir, params.dataset, params.csv, params.images, params.encoding
    )
    read_caption_csv(csv_path, images_dir, encoding)  # bad input is reported before the model loads
    with _start("eval retrieval", params, progress, params.dataset_dir) as job:
        encoder = job.load_encoder(params.model)
        with job.stage("retrieval"):
            result = _retrieval(encoder, params, csv_path, images_dir, encoding, params.dataset, job)
        name = RETRIEVAL_NAMES.get(params.dataset, Path(csv_path).stem)
        measured = {name: pick(result.recall.as_dict(), RETRIEVAL_METRICS)}
        return _finish(job, params, encoder, measured, {name: result.as_dict()}, {}, f"Retrieval: {name}")


def run_eval_selo(params: EvalSeloParams, progress: Progress) -> dict[str, Any]:
    """SeLo metrics of every AIR-SLT sample (maps from localize, or from ``params.maps``)."""
    read_air_slt(params.air_slt_dir)  # bad input is reported before the model loads
    with _start("eval selo", params, progress, params.air_slt_dir, params.maps) as job:
        encoder = None if params.maps else job.load_encoder(params.model)
        with job.stage("semantic localization"):
            result = _selo(
                params,
                params.air_slt_dir,
                params.method,
                params.exact,
                params.scales,
                params.save_maps,
                "",
                job,
            )
        outputs = write_selo_files(job, "", result)
        measured = {"AIR-SLT": pick(result.means, SELO_METRICS)}
        title = f"Semantic localization: AIR-SLT ({result.source})"
        return _finish(job, params, encoder, measured, {"AIR-SLT": result.as_dict()}, outputs, title)


def run_eval_all(params: EvalAllParams, progress: Progress) -> dict[str, Any]:
    """The paper's whole table for one model on the ``rs5m_test_data`` layout."""
    layout = find_test_data(params.test_data_dir, params.only)
    with _start("eval all", params, progress, params.test_data_dir) as job:
        encoder = job.load_encoder(params.model)
        measured: dict[str, dict[str, float]] = {}
        results: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        for name, (folder, kind) in layout.zeroshot.items():
            with job.stage(f"zero-shot {name}"):
                zeroshot = _zeroshot(encoder, params, folder, kind, params.templates, job)
            outputs[name] = write_zeroshot_files(job, name, zeroshot)
            measured[name], results[name] = pick(zeroshot.as_dict(), ZEROSHOT_METRICS), zeroshot.as_dict()
        for name, (folder, kind) in layout.retrieval.items():
            csv_path, images_dir, encoding = caption_paths(folder, kind)
            with job.stage(f"retrieval {name}"):
                retrieval = _retrieval(encoder, params, csv_path, images_dir, encoding, kind, job)
            measured[name], results[name] = (
                pick(retrieval.recall.as_dict(), RETRIEVAL_METRICS),
                retrieval.as_dict(),
            )
        if layout.selo is not None:
            with job.stage("semantic localization AIR-SLT"):
                selo = _selo(
                    params, layout.selo, params.method, params.exact, None, params.save_maps, "AIR-SLT", job
                )
            outputs["AIR-SLT"] = write_selo_files(job, "AIR-SLT", selo)
            measured["AIR-SLT"], results["AIR-SLT"] = pick(selo.means, SELO_METRICS), selo.as_dict()
        lines = [f"Missing from {layout.root}: {', '.join(layout.missing)}."] if layout.missing else []
        return _finish(job, params, encoder, measured, results, outputs, "RS5M paper benchmarks", lines)


# --- pieces -------------------------------------------------------------------------------------------


def _start(command: str, params: EvalCommon, progress: Progress, *inputs: str | None):
    return start_job(
        command, params.output, params.overwrite, progress, (*inputs, *params.model.input_files())
    )


def _cache(params: EvalCommon) -> EmbeddingCache | None:
    if params.no_cache:
        return None
    return EmbeddingCache(params.cache or default_cache_dir())


def _zeroshot(encoder, params: EvalCommon, folder, kind: str, templates: str, job: JobRun) -> ZeroShotResult:
    classnames = getattr(params, "classnames", None)
    return evaluate_zeroshot(
        encoder,
        folder,
        classnames,
        templates,
        dataset=kind,
        cache=_cache(params),
        progress=job.progress,
        batch_size=params.model.batch_size,
        workers=params.workers,
    )


def _retrieval(
    encoder, params: EvalCommon, csv_path, images_dir, encoding, kind, job: JobRun
) -> RetrievalResult:
    return evaluate_retrieval(
        encoder,
        csv_path,
        images_dir,
        dataset=kind,
        encoding=encoding,
        cache=_cache(params),
        progress=job.progress,
        batch_size=params.model.batch_size,
        workers=params.workers,
    )


def _selo(params: EvalCommon, folder, method, exact, scales, save_maps, sub: str, job: JobRun) -> SeloResult:
    maps = getattr(params, "maps", None)
    return evaluate_selo(
        folder,
        model=params.model,
        method=method,
        exact=exact,
        scales=scales,
        maps_dir=maps,
        save_maps_dir=job.path(str(Path(sub) / "maps")) if save_maps else None,
        progress=job.progress,
    )


def write_zeroshot_files(job: JobRun, sub: str, result: ZeroShotResult) -> dict[str, str]:
    """Per-class accuracy, confusion matrix (CSV, PNG) and per-image predictions under ``sub``."""
    folder = _subfolder(job, sub)
    totals = result.confusion.sum(axis=1)
    per_class = (
        [name, prompt, int(total), int(result.confusion[i, i]), _text(result.per_class[i])]
        for i, (name, prompt, total) in enumerate(zip(result.classes, result.classnames, totals, strict=True))
    )
    write_rows_csv(
        folder / "per_class.csv", ["class", "prompt_name", "images", "correct", "accuracy"], per_class
    )
    write_confusion_csv(folder / "confusion.csv", result.confusion, result.classes)
    write_confusion_png(
        folder / "confusion.png", result.confusion, result.classes, f"{result.root.name}: confusion"
    )
    predictions = (
        [str(file), result.classes[label], result.classes[guess]]
        for file, label, guess in zip(result.files, result.labels, result.predicted, strict=True)
    )
    write_rows_csv(folder / "predictions.csv", ["file", "class", "predicted"], predictions)
    names = ("per_class.csv", "confusion.csv", "confusion.png", "predictions.csv")
    return {
        name.split(".")[0] + ("_png" if name.endswith("png") else ""): job.final(str(Path(sub) / name))
        for name in names
    }


def write_selo_files(job: JobRun, sub: str, result: SeloResult) -> dict[str, Any]:
    """``samples.csv`` under ``sub`` (and the maps folder, when maps were kept)."""
    folder = _subfolder(job, sub)
    header = ["index", "image", "caption", "rsu", "ras", "rda", "rmi", "peaks", "notes"]
    rows = (
        [
            s.index,
            s.image,
            s.caption,
            *(repr(s.scores[k]) for k in SELO_METRICS),
            len(s.scores.peaks),
            "; ".join(s.scores.notes),
        ]
        for s in result.samples
    )
    write_rows_csv(folder / "samples.csv", header, rows)
    outputs: dict[str, Any] = {"samples": job.final(str(Path(sub) / "samples.csv"))}
    if any(s.saved_map for s in result.samples):
        outputs["maps"] = job.final(str(Path(sub) / "maps"))
    return outputs


def _subfolder(job: JobRun, sub: str) -> Path:
    folder = job.path(sub) if sub else job.folder
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _text(value: float) -> str:
    return "" if value != value else repr(float(value))  # NaN → empty


def _finish(
    job: JobRun,
    params: EvalCommon,
    encoder,
    measured: Mapping[str, Mapping[str, float]],
    results: Mapping[str, Any],
    outputs: Mapping[str, Any],
    title: str,
    lines: list[str] | None = None,
) -> dict[str, Any]:
    model_name = encoder.name if encoder is not None else None
    published = rows_for(model_name, params.published)
    rows = comparison_rows(measured, published)
    described = encoder.describe() if encoder is not None else None
    header = [
        f"Model: {model_name or 'none (maps given)'}"
        + (f" ({described['architecture']}, weights: {described['weights']})" if described else ""),
        f"Published numbers: {', '.join(row.name for row in published) or 'none for this model'}.",
        *(lines or []),
    ]
    write_comparison(rows, job.folder, title, header)
    all_outputs = {"table": job.final("results.md"), "table_csv": job.final("results.csv"), **outputs}
    return job.finish(
        model=described,
        parameters=_parameters(params),
        crs=None,
        outputs=all_outputs,
        results=dict(results),
        comparison=[{**dataclasses.asdict(row), "difference": row.difference} for row in rows],
        published=[row.name for row in published],
    )


def _parameters(params: EvalCommon) -> dict[str, Any]:
    values = dataclasses.asdict(params)
    values.pop("output", None)
    return values
