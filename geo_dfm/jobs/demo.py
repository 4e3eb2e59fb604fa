"""``demo``: a synthetic sample scene, then ``localize`` and ``classify`` on it, all under one folder.

The demo first tries the published GeoRSCLIP ViT-B/32 weights; when they cannot be had (offline,
not downloaded), it says so loudly and falls back to the toy model trained on synthetic scenes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from geo_dfm.errors import WeightsNotFoundError
from geo_dfm.jobs.classify import ClassifyParams, run_classify
from geo_dfm.jobs.localize import LocalizeParams, run_localize
from geo_dfm.jobs.params import ChipParams, ModelParams
from geo_dfm.jobs.pipeline import start_job
from geo_dfm.jobs.summary import write_summary
from geo_dfm.progress import Progress

log = logging.getLogger(__name__)

DEMO_MODEL = "georsclip-vit-b-32"
FALLBACK_MODEL = "toy"
DEMO_QUERIES = ("water", "runway")
#: A scene seed below the toy model's training seeds: the model never saw this scene.
DEMO_SEED = 42


@dataclass(frozen=True)
class DemoParams:
    output: str
    overwrite: bool = False
    model: str = DEMO_MODEL
    device: str = "auto"
    size: int = 512
    gsd: float = 2.0


def fallback_banner(error: Exception, model: str) -> str:
    """The loud message printed when the demo model's weights are missing."""
    line = "!" * 78
    return "\n".join(
        [
            line,
            f"!! geo-dfm demo: the {model} weights are not available on this machine.",
            f"!! Tried: {error}",
            f"!! To use them: on a machine with internet run 'geo-dfm models download {model}'",
            "!!   (weights go to the Hugging Face cache), or pass a local checkpoint with --weights PATH.",
            f"!! FALLING BACK to the '{FALLBACK_MODEL}' model: a tiny CLIP trained here on synthetic",
            "!!   landscapes. Its maps show the pipeline working, not GeoRSCLIP's quality.",
            line,
        ]
    )


def _relocate(value: Any, old: str, new: str) -> Any:
    """``value`` with every string path under ``old`` moved under ``new`` (summaries of sub-jobs)."""
    if isinstance(value, str):
        return new + value[len(old) :] if value == old or value.startswith(old + "/") else value
    if isinstance(value, dict):
        return {k: _relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocate(v, old, new) for v in value]
    return value


def run_demo(params: DemoParams, progress: Progress, notify: Callable[[str], None]) -> dict[str, Any]:
    """Write ``scene.tif`` (+ truth), ``localize/`` and ``classify/`` under ``params.output``."""
    from geo_dfm.synthetic import make_scene
    from geo_dfm.synthetic.classes import CLASS_NAMES

    model = ModelParams(name=params.model, device=params.device)
    with start_job("demo", params.output, params.overwrite, progress) as job:
        try:
            job.load_encoder(model)
        except WeightsNotFoundError as error:
            notify(fallback_banner(error, params.model))
            log.warning("demo: %s weights not available; using the toy model", params.model)
            model = replace(model, name=FALLBACK_MODEL)
            job.load_encoder(model)
        with job.stage("make scene"):
            scene = make_scene(
                job.path("scene.tif"), width=params.size, height=params.size, gsd=params.gsd, seed=DEMO_SEED
            )
        chips = ChipParams()
        localize = run_localize(
            LocalizeParams(
                scene=str(scene.path),
                queries=DEMO_QUERIES,
                output=str(job.path("localize")),
                chips=chips,
                model=model,
            ),
            progress,
        )
        classify = run_classify(
            ClassifyParams(
                scene=str(scene.path),
                output=str(job.path("classify")),
                labels=tuple(CLASS_NAMES),
                chips=chips,
                model=model,
            ),
            progress,
        )
        old, new = str(job.folder.resolve()), str(job.target)
        localize, classify = _relocate(localize, old, new), _relocate(classify, old, new)
        write_summary(localize, job.path("localize") / "summary.json")
        write_summary(classify, job.path("classify") / "summary.json")
        return job.finish(
            model=classify["model"],
            parameters={"model": params.model, "size": params.size, "gsd": params.gsd},
            crs=scene_crs(scene.path),
            outputs={"folder": str(job.target)},
            fallback=model.name != params.model,
            scene=job.final("scene.tif"),
            truth={
                "raster": job.final(scene.truth_raster_path.name),
                "polygons": job.final(scene.truth_path.name),
            },
            localize=localize,
            classify=classify,
        )


def scene_crs(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.crs


def describe_outputs(summary: dict[str, Any]) -> str:
    """A short human-readable list of what the demo wrote."""
    lines = [f"geo-dfm demo: outputs in {summary['outputs']['folder']}", f"  scene:    {summary['scene']}"]
    for query, path in summary["localize"]["outputs"]["heatmaps"].items():
        lines.append(f"  heatmap:  {path}  ({query!r})")
    for query, path in summary["localize"]["outputs"]["overlays"].items():
        lines.append(f"  overlay:  {path}  ({query!r})")
    if summary["localize"]["outputs"].get("regions"):
        lines.append(f"  regions:  {summary['localize']['outputs']['regions']}")
    lines.append(f"  classes:  {summary['classify']['outputs']['classes']}")
    if summary["classify"]["outputs"].get("vectors"):
        lines.append(f"  labels:   {summary['classify']['outputs']['vectors']}")
    lines.append(
        f"  model:    {summary['model'].get('name')}" + ("  (FALLBACK)" if summary["fallback"] else "")
    )
    return "\n".join(lines)


__all__ = ["DemoParams", "describe_outputs", "run_demo"]
