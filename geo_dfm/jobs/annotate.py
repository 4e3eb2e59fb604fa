"""``annotate``: ``classify`` and/or ``localize`` over many scenes, resumable, locally or on Dask.

Per scene, the registered single-scene jobs run unchanged (:mod:`geo_dfm.batch.tasks`) into
``OUT/scenes/<id>/classify`` and ``OUT/scenes/<id>/localize``, each committed atomically; the process
that started the run journals every finished scene (``OUT/journal.jsonl``) and, at the end, alone writes
``OUT/annotations.gpkg`` (layers ``chips``, ``regions``, ``hotspots``, ``scenes``), one mosaic VRT per
output kind (``OUT/mosaics/``) and ``OUT/summary.json``. A kill at any moment leaves a consistent OUT;
``resume`` skips the scenes journaled as done, re-runs the others (failed ones included) and rewrites the
merged outputs, which are then those of an uninterrupted run.

Engines: ``workers=1`` runs scenes in this process, ``workers=N`` in a local pool of N processes,
``scheduler`` on a Dask cluster. Each worker process runs torch with ``model.threads`` threads (default
1), so every engine computes the same floats; results are identical whichever engine ran them (on the
same kind of CPU/GPU). A failing scene (unreadable, corrupt, outside the AOI, no CRS) is recorded with its
error and the run goes on; the summary counts them (``geo-dfm annotate`` then exits with status 3).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rasterio.crs import CRS

from geo_dfm.jobs.params import ChipParams, ModelParams, param
from geo_dfm.jobs.stitch import WEIGHTINGS
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

#: What the per-scene checks see as the scene: a GDAL virtual path passes ``check_scene`` unopened, so the
#: jobs' own ``check_params`` check everything else once, before any scene runs.
_CHECK_SCENE = "/vsimem/geo-dfm-annotate/check.tif"
#: Fields of a per-scene job's parameters that the batch sets per scene (not part of the run's identity).
_PER_SCENE = ("scene", "output", "overwrite")


@dataclass(frozen=True)
class AnnotateParams:
    """Everything ``annotate`` needs. ``classify`` runs when labels, a labels file or a preset is given,
    ``localize`` when queries are; at least one of them."""

    scenes: tuple[str, ...] = param(
        help="Scenes: raster paths, globs, text files of paths/URLs (/vsicurl/, /vsis3/ pass through), "
        "STAC ItemCollection JSON files."
    )
    output: str = param(help="Output folder of the run.")
    queries: tuple[str, ...] = param((), help="Text queries to localize in every scene.")
    labels: tuple[str, ...] = param((), help="Class names to classify every scene into.")
    labels_file: str | None = param(None, help="A text file with one class name per line.")
    preset: str | None = param(None, help="A label preset (landcover, aid, resisc45, eurosat).")
    templates: str = param("rs105", help="Prompt templates: rs105, remoteclip, skyclip, none, or a file.")
    min_confidence: float = param(0.0, help="classify: leave chips and pixels below this unlabelled.")
    method: str = param("blend", help="localize: blend, selo or dense.", choices=("blend", "selo", "dense"))
    exact: bool = param(False, help="localize selo only: the reference's JPEG (q95) round trips.")
    weighting: str = param("hann", help="How a chip's values spread over its pixels.", choices=WEIGHTINGS)
    decimate: int | None = param(None, help="One output pixel per N×N scene pixels.")
    region_threshold: float = param(0.5, help="localize: normalised score above which pixels are hot.")
    min_region_area: float = param(0.0, help="localize: drop hot regions smaller than this (m²).")
    asset: str | None = param(None, help="STAC asset key to annotate (default: visual, or the one raster).")
    crs: str | None = param(
        None, help="CRS of the run's GeoPackage and mosaics (default: the first scene's)."
    )
    workers: int = param(1, help="Local worker processes (1: in this process).")
    scheduler: str | None = param(None, help="Dask scheduler address (tcp://host:8786) or scheduler file.")
    resume: bool = param(False, help="Continue the run in the output folder: skip the scenes it finished.")
    overwrite: bool = param(False, help="Replace an earlier run's output folder (only what geo-dfm wrote).")
    chips: ChipParams = field(default_factory=ChipParams)
    model: ModelParams = field(default_factory=ModelParams)

    def inputs(self) -> tuple[str, ...]:
        """Files the run reads besides the scenes (an output must never replace one of them)."""
        files = (self.labels_file,) if self.labels_file else ()
        return (*files, *self.chips.input_files(), *self.model.input_files())


@dataclass(frozen=True)
class JobPlan:
    """The checked run: ``jobs`` = ``(job name, parameters)`` in run order, whose ``scene`` and ``output``
    are filled in per scene (labels resolved, model threads fixed); ``crs`` of the merged outputs."""

    jobs: tuple[tuple[str, Any], ...]
    crs: CRS | None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.jobs)

    @property
    def labels(self) -> tuple[str, ...]:
        return next((p.labels for name, p in self.jobs if name == "classify"), ())

    def identity(self, params: AnnotateParams) -> dict[str, Any]:
        """What makes two runs the same run (``run.json``): every per-scene parameter, the CRS, the asset."""
        jobs = {
            name: {k: v for k, v in asdict(job).items() if k not in _PER_SCENE} for name, job in self.jobs
        }
        return {**jobs, "crs": params.crs, "asset": params.asset}


def plan_jobs(params: AnnotateParams) -> JobPlan:
    """Check the parameters (everything but the scenes themselves) before anything is written."""
    from geo_dfm.jobs import classify, localize

    if not params.scenes:
        raise InputError("scenes", "give at least one scene")
    if params.resume and params.overwrite:
        raise InputError("resume", "give either resume or overwrite, not both")
    if params.workers < 1:
        raise InputError("workers", f"needs at least 1 worker, got {params.workers}")
    if params.scheduler and params.workers != 1:
        raise InputError("workers", "give either workers (a local pool) or scheduler (Dask), not both")
    crs = None
    if params.crs:
        try:
            crs = CRS.from_user_input(params.crs)
        except Exception as exc:
            raise InputError("crs", f"not a CRS: {params.crs!r} ({exc})") from None
    wants_classes = bool(params.labels or params.labels_file or params.preset)
    if not params.queries and not wants_classes:
        raise InputError(
            "queries", "give queries to localize and/or labels, a labels file or a preset to classify"
        )
    model = replace(params.model, threads=params.model.threads or 1)
    jobs: list[tuple[str, Any]] = []
    if wants_classes:
        checked = classify.check_params(
            classify.ClassifyParams(
                scene=_CHECK_SCENE, output="", labels=params.labels, labels_file=params.labels_file,
                preset=params.preset, templates=params.templates, min_confidence=params.min_confidence,
                weighting=params.weighting, decimate=params.decimate, chips=params.chips, model=model,
            )
        )  # fmt: skip
        jobs.append(("classify", replace(checked, scene="", labels_file=None, preset=None)))
    if params.queries:
        checked = localize.check_params(
            localize.LocalizeParams(
                scene=_CHECK_SCENE, queries=params.queries, output="", method=params.method, exact=params.exact,
                weighting=params.weighting, decimate=params.decimate, region_threshold=params.region_threshold,
                min_region_area=params.min_region_area, chips=params.chips, model=model,
            )
        )  # fmt: skip
        jobs.append(("localize", replace(checked, scene="")))
    return JobPlan(tuple(jobs), crs)


def run_annotate(params: AnnotateParams, progress: Progress) -> dict[str, Any]:
    """Run ``annotate`` and return its summary (also ``OUT/summary.json``)."""
    from geo_dfm import __version__
    from geo_dfm.batch.engines import make_engine
    from geo_dfm.batch.folder import JOURNAL, BatchFolder, RunRecord
    from geo_dfm.batch.journal import Journal
    from geo_dfm.batch.mosaic import mosaic_kinds
    from geo_dfm.batch.progress import BatchProgress
    from geo_dfm.batch.sources import resolve_scenes
    from geo_dfm.jobs.summary import StageTimer
    from tile_tools.reader import is_virtual_source

    plan = plan_jobs(params)
    timer = StageTimer()
    progress.stage("resolve scenes")
    with timer.stage("resolve scenes"):
        scenes = resolve_scenes(params.scenes, params.asset)
    kinds = mosaic_kinds(plan.names, params.queries)
    record = RunRecord.of(plan.names, plan.identity(params), scenes, [k.name for k in kinds])
    local_scenes = [s.source for s in scenes if not is_virtual_source(s.source)]
    with BatchFolder(
        params.output, record, resume=params.resume, overwrite=params.overwrite,
        inputs=(*local_scenes, *params.inputs()), version=__version__,
    ) as folder:  # fmt: skip
        journal = Journal(folder.file(JOURNAL))
        earlier = journal.read() if folder.resumed else {}
        todo = [s for s in scenes if not (s.id in earlier and earlier[s.id].done)]
        tasks = [scene_task(plan, scene, folder) for scene in todo]
        engine = make_engine(params.workers, params.scheduler, progress.cancel_event)
        if tasks:
            aborted = True
            try:
                progress.stage("load model")
                with timer.stage("load model"):
                    engine.start(plan.jobs[0][1].model)
                counter = BatchProgress(progress, len(tasks), skipped=len(scenes) - len(tasks))
                with timer.stage("annotate scenes"):
                    for scene_record in engine.run(tasks):
                        journal.append(scene_record)
                        counter.finished(scene_record)
                aborted = False
            finally:
                engine.close(aborted)
        summary = finish_run(folder, plan, params, scenes, kinds, journal.read(), timer, engine, len(tasks))
        folder.commit()
    return summary


def scene_task(plan: JobPlan, scene: Any, folder: Any) -> Any:
    """The task of one scene: each planned job with the scene and its folder under OUT (replaced when
    an interrupted run left it)."""
    from geo_dfm.batch.tasks import SceneTask

    jobs = tuple(
        (
            name,
            replace(job, scene=scene.source, output=str(folder.job_folder(scene.id, name)), overwrite=True),
        )
        for name, job in plan.jobs
    )
    return SceneTask(scene, jobs)


def run_crs(plan: JobPlan, scenes: Any, records: Any) -> CRS:
    """The CRS of the merged outputs: the one asked for, else the first scene's (done scenes first)."""
    if plan.crs is not None:
        return plan.crs
    ordered = [records[s.id] for s in scenes if s.id in records]
    for record in sorted(ordered, key=lambda r: not r.done):
        if record.crs:
            return CRS.from_user_input(record.crs)
    return CRS.from_epsg(4326)


def finish_run(
    folder: Any,
    plan: JobPlan,
    params: AnnotateParams,
    scenes: Any,
    kinds: Any,
    records: Any,
    timer: Any,
    engine: Any,
    ran: int,
) -> dict[str, Any]:
    """The single writer's end of a run: GeoPackage, mosaics and summary from the journal's records."""
    from geo_dfm.batch.folder import GEOPACKAGE, JOURNAL, MOSAICS, RUN_RECORD, SUMMARY, WARPED
    from geo_dfm.batch.merge import write_run_geopackage
    from geo_dfm.batch.mosaic import write_mosaic
    from geo_dfm.jobs.summary import make_summary, write_summary

    crs = run_crs(plan, scenes, records)
    done = [s for s in scenes if s.id in records and records[s.id].done]
    failed = [records[s.id] for s in scenes if s.id in records and not records[s.id].done]
    with timer.stage("merge"):
        rows = write_run_geopackage(
            folder.file(GEOPACKAGE), scenes, records, plan.names, folder.job_folder, crs
        )
    mosaics: dict[str, str] = {}
    with timer.stage("mosaics"):
        for kind in kinds:
            sources = [(s.id, folder.job_folder(s.id, kind.job) / kind.file) for s in done]
            sources = [(scene_id, path) for scene_id, path in sources if path.is_file()]
            if sources:
                path = folder.file(f"{MOSAICS}/{kind.name}.vrt")
                names = plan.labels if kind.name == "classes" else None
                write_mosaic(path, sources, crs, folder.file(WARPED), category_names=names)
                mosaics[kind.name] = str(path)
    outputs = {
        "geopackage": str(folder.file(GEOPACKAGE)),
        "mosaics": mosaics,
        "scenes": {s.id: {job: str(folder.job_folder(s.id, job)) for job in plan.names} for s in done},
        "journal": str(folder.file(JOURNAL)),
        "run": str(folder.file(RUN_RECORD)),
        "summary": str(folder.file(SUMMARY)),
    }
    summary = make_summary(
        "annotate",
        _model_of(folder, plan, done),
        {**plan.identity(params), "engine": engine.describe()},
        timer,
        crs,
        outputs,
        scenes={"total": len(scenes), "done": len(done), "failed": len(failed), "ran": ran},
        failed=[{"scene": r.scene, "source": r.source, "code": r.code, "error": r.error} for r in failed],
        chips=sum(records[s.id].chips for s in done),
        layers=rows,
        queries=[q for name, job in plan.jobs if name == "localize" for q in job.queries],
        labels=list(plan.labels),
    )
    write_summary(summary, folder.file(SUMMARY))
    return summary


def _model_of(folder: Any, plan: JobPlan, done: Any) -> dict[str, Any] | None:
    """The model entry of the first finished scene's job summary (the model ran on the workers)."""
    for scene in done:
        path = folder.job_folder(scene.id, plan.names[0]) / "summary.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError):
            continue
    return None
