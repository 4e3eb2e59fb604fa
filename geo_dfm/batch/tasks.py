"""One scene of a batch run: the registered single-scene jobs, run into the scene's own folders.

A :class:`SceneTask` is plain, picklable data (it travels to pool and Dask workers); running it
(:func:`run_scene_task`) calls the jobs of :mod:`geo_dfm.jobs.registry` — the same code as ``geo-dfm
localize`` / ``classify`` — each committing its output folder atomically, and returns a
:class:`~geo_dfm.batch.journal.SceneRecord`. A failing scene is a record with the failure's exit
status and message (:func:`geo_dfm.errors.exit_status`), never an exception: only a cancel propagates.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from geo_dfm.batch.journal import DONE, FAILED, SceneRecord
from geo_dfm.batch.sources import SceneRef
from geo_dfm.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, JobCancelled, exit_status
from geo_dfm.progress import Progress
from tile_tools.errors import InputError


@dataclass(frozen=True)
class SceneTask:
    """``scene`` and the ``jobs`` to run on it: ``(registered job name, its parameter object)`` in order."""

    scene: SceneRef
    jobs: tuple[tuple[str, Any], ...]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def worker_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_scene_task(task: SceneTask, progress: Progress | None = None) -> SceneRecord:
    """Run every job of ``task``; the scene's record (done, or failed with its error)."""
    from geo_dfm.jobs.registry import get_job

    progress = progress or Progress()
    started, start = utc_now(), time.perf_counter()
    jobs: dict[str, float] = {}
    chips = 0
    summary: Mapping[str, Any] | None = None
    try:
        for name, params in task.jobs:
            begin = time.perf_counter()
            summary = get_job(name).run(params, progress)
            jobs[name] = round(time.perf_counter() - begin, 3)
            chips += int(summary.get("chips") or 0)
            if summary.get("crs") is None:
                raise InputError(
                    task.scene.source, "the scene has no CRS; a batch run needs georeferenced scenes"
                )
    except (JobCancelled, KeyboardInterrupt):
        raise
    except Exception as exc:
        status = exit_status(exc)
        crs, footprint = source_footprint(task.scene.source)
        return SceneRecord(
            task.scene.id, task.scene.source, FAILED, started, utc_now(),
            round(time.perf_counter() - start, 3), chips, status.code, status.message, crs, footprint,
            jobs, worker_name(),
        )  # fmt: skip
    crs, footprint = source_footprint(task.scene.source)
    if footprint is None and summary is not None:  # a slippy-map folder: the job's output grid
        crs, footprint = grid_footprint(summary)
    return SceneRecord(
        task.scene.id, task.scene.source, DONE, started, utc_now(), round(time.perf_counter() - start, 3),
        chips, 0, None, crs, footprint, jobs, worker_name(),
    )  # fmt: skip


def grid_footprint(summary: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(crs, WKT polygon)`` of a job summary's output grid."""
    from affine import Affine
    from shapely.geometry import Polygon

    grid = summary.get("grid")
    if not grid or summary.get("crs") is None:
        return summary.get("crs"), None
    transform = Affine.from_gdal(*grid["geotransform"])
    width, height = grid["width"], grid["height"]
    corners = [transform @ xy for xy in ((0, 0), (width, 0), (width, height), (0, height))]
    return str(summary["crs"]), Polygon(corners).wkt


def source_footprint(source: str) -> tuple[str | None, str | None]:
    """``(crs, WKT polygon)`` of a scene file's bounds, ``(None, None)`` when it cannot be read."""
    import rasterio
    from shapely.geometry import box

    from geo_dfm.jobs.summary import crs_text

    try:
        with rasterio.open(source) as src:
            if src.crs is None:
                return None, None
            return crs_text(src.crs), box(*src.bounds).wkt
    except Exception:  # a corrupt or unreachable scene: its footprint is unknown
        return None, None


def lost_task_record(task: SceneTask, exc: BaseException, started: str) -> SceneRecord:
    """The record of a task whose worker failed it without a record (a worker process died)."""
    crs, footprint = source_footprint(task.scene.source)
    message = f"{task.scene.source}: the worker running it failed ({type(exc).__name__}: {exc})"
    return SceneRecord(
        task.scene.id, task.scene.source, FAILED, started, utc_now(), 0.0, 0, EXIT_INTERNAL, message, crs,
        footprint,
    )  # fmt: skip


def load_model(model: Any) -> tuple[int, str] | None:
    """Load ``model`` (:class:`~geo_dfm.jobs.params.ModelParams`) into this process's encoder cache;
    ``None`` when it loaded, else ``(exit code, message)`` (plain data: it crosses process boundaries)."""
    from geo_dfm.jobs.pipeline import load_job_encoder

    try:
        load_job_encoder(model)
    except (JobCancelled, KeyboardInterrupt):
        raise
    except Exception as exc:
        status = exit_status(exc)
        return status.code, status.message
    return None


def raise_model_error(outcome: tuple[int, str] | None) -> None:
    """Raise what :func:`load_model` reported (an :class:`InputError` for bad input)."""
    if outcome is None:
        return
    code, message = outcome
    if code == EXIT_BAD_INPUT:
        raise InputError(None, message)
    raise RuntimeError(f"the model could not be loaded on a worker: {message}")
