"""The job spine: the stages every job composes.

::

    with start_job("localize", params.output, params.overwrite, progress, inputs) as job:   # start
        plan = job.plan(scene, params.chips, params.model)        # plan: checked before the model loads
        encoder = job.load_encoder(params.model)                   # the encoder (cached per process)
        for batch in iter_features(plan, encoder, job.progress):   # features: pooled (N, D) or patches
            stitcher.add(batch.windows, score(batch.features))      # score + stitch (accumulator, on disk)
        outputs = write_…(job, stitcher, …)                         # finish: streaming outputs
        return job.finish(model=…, parameters=…, crs=…, outputs=…)  # summary.json + atomic commit

- **start** checks the output target (free, or replaceable with ``overwrite``), opens its temporary twin
  (outputs are streamed into it from the start) and times the stages; a failure anywhere removes the
  twin and leaves an existing output as it was.
- **plan** opens the scene and plans its windows with :func:`tile_tools.grid.plan_chips`, taking the
  default chip size from the model's registry entry, so every input problem (unreadable scene, bands,
  chip size, AOI overlap) is reported before the model loads.
- **features** reads chips in background threads (:func:`tile_tools.prefetch.iter_chip_batches`) while
  the model encodes the previous batch; each window once.
- **finish** writes ``summary.json`` and renames the temporary twin into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.windows import Window

from geo_dfm.jobs.params import ChipParams, ModelParams
from geo_dfm.jobs.summary import StageTimer, make_summary, write_summary
from geo_dfm.progress import Progress
from tile_tools.chip import Chip
from tile_tools.errors import InputError

PrepareImage = Callable[[Chip], np.ndarray]


# --- start -------------------------------------------------------------------------------------------


def check_scene(path: str | os.PathLike[str]) -> str:
    """An existing scene path, absolute; URLs and GDAL virtual paths (``/vsizip//…``) pass verbatim
    (never through :class:`pathlib.Path`, which would fold their double slashes)."""
    from tile_tools.reader import is_virtual_source

    text = os.fspath(path)
    if is_virtual_source(text):
        return text
    scene = Path(text).expanduser()
    if not scene.exists():
        raise InputError(text, "scene file not found")
    if scene.is_dir() and not is_slippy_folder(scene):
        raise InputError(text, "is a folder, not a raster file (give a GeoTIFF, VRT, JPEG2000, …)")
    return str(scene.absolute())


def is_slippy_folder(path: Path) -> bool:
    """A local slippy-map tile folder (``z/x/y.png``): read as one scene, not as a folder of scenes."""
    return any(child.is_dir() and child.name.isdigit() for child in path.iterdir())


def check_queries(queries: Sequence[str]) -> tuple[str, ...]:
    """Queries are used verbatim; an empty (or blank) or repeated one is an :class:`InputError`."""
    if not queries:
        raise InputError("queries", "give at least one query text")
    seen: set[str] = set()
    for query in queries:
        if not query.strip():
            raise InputError("queries", "empty query text")
        if query in seen:
            raise InputError("queries", f"query {query!r} is given twice")
        seen.add(query)
    return tuple(queries)


def output_target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """The absolute output path; an existing one without ``overwrite`` is an :class:`InputError`."""
    target = Path(path).expanduser().absolute()
    if target.exists() and not overwrite:
        kind = "folder" if target.is_dir() else "file"
        raise InputError(target, f"output {kind} exists (use --overwrite to replace it)")
    return target


@dataclass
class JobRun:
    """One running job: its command, progress, stage timer and output: a temporary ``folder`` that becomes
    ``target`` when the job ends, or, for jobs writing one file, the temporary ``file`` that does."""

    command: str
    progress: Progress
    target: Path
    overwrite: bool
    inputs: tuple[str, ...]
    timer: StageTimer = field(default_factory=StageTimer)
    folder: Path | None = None
    file: Path | None = None
    summary: dict[str, Any] | None = None
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def hold(self, resource: contextlib.AbstractContextManager[Any]) -> Any:
        """Enter ``resource`` (a lock, a temporary file) for the rest of the run."""
        return self.resources.enter_context(resource)

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[None]:
        """Report and time a stage."""
        self.progress.stage(name, total=total)
        with self.timer.stage(name):
            yield

    def path(self, name: str) -> Path:
        """Where to write output ``name`` now (inside the temporary folder)."""
        if self.folder is None:
            raise ValueError(f"{self.command} writes no output folder")
        return self.folder / name

    def final(self, name: str) -> str:
        """Where output ``name`` will be once the job has finished (what the summary lists)."""
        return str(self.target / name)

    def plan(
        self, scene: str, chips: ChipParams, model: ModelParams | None, layout: str = "regular", **kw: Any
    ):
        """Open ``scene`` and plan its windows (see :func:`open_chip_plan`), before any model loads."""
        default_size = model_input_size(model) if model is not None else 224
        with self.stage("plan chips"):
            return open_chip_plan(scene, chips, default_size, layout=layout, **kw)

    def load_encoder(self, model: ModelParams):
        """The :class:`~geo_dfm.models.encoder.Encoder` ``model`` names (cached per process)."""
        with self.stage("load model"):
            return load_job_encoder(model)

    def finish(
        self,
        *,
        model: Mapping[str, Any] | None,
        parameters: Mapping[str, Any],
        crs: CRS | None,
        outputs: Mapping[str, Any],
        **extra: Any,
    ) -> dict[str, Any]:
        """The summary (also ``summary.json`` in the output folder); the folder is committed on exit."""
        outputs = dict(outputs)
        if self.folder is not None:
            outputs["summary"] = self.final("summary.json")
        summary = make_summary(self.command, model, parameters, self.timer, crs, outputs, **extra)
        if self.folder is not None:
            write_summary(summary, self.path("summary.json"))
        self.summary = summary
        return summary


@contextlib.contextmanager
def start_job(
    command: str,
    output: str | os.PathLike[str],
    overwrite: bool,
    progress: Progress,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
    folder: bool = True,
    is_ours: Callable[[Path], bool] | None = None,
) -> Iterator[JobRun]:
    """Check the output and open it (locked for the run, checked against the inputs, see
    :mod:`tile_tools.output`): a temporary twin folder (``folder=True``) that replaces ``output`` only
    when the body returns normally and has called :meth:`JobRun.finish`, or a single file (``folder=False``;
    ``is_ours`` recognises a file this job may replace) written at :attr:`JobRun.file`. On any exception
    the twin is removed and an existing output stays untouched."""
    target = output_target(output, overwrite)
    run = JobRun(command, progress, target, overwrite, tuple(os.fspath(p) for p in inputs if p))
    with run.resources:
        yield from _open_output(run, folder, is_ours)


def _open_output(run: JobRun, folder: bool, is_ours: Callable[[Path], bool] | None) -> Iterator[JobRun]:
    from geo_dfm import __version__
    from tile_tools.output import OutputFile, OutputFolder

    target, overwrite, command = run.target, run.overwrite, run.command
    if not folder:
        with OutputFile(
            target, overwrite=overwrite, is_ours=is_ours or (lambda _: False), inputs=run.inputs
        ) as tmp:
            run.file = tmp
            yield run
        return
    with OutputFolder(
        target, overwrite=overwrite, inputs=run.inputs, command=command, version=__version__
    ) as out:
        run.folder = out.path
        yield run
        if run.summary is None:
            raise ValueError(f"{command}: the job ended without finish()")


# --- model ---------------------------------------------------------------------------------------------


def load_job_encoder(model: ModelParams):
    """Load the encoder ``model`` names (cached per process by the factory)."""
    from geo_dfm.models.factory import load_encoder

    return load_encoder(
        model=model.name,
        weights=model.weights,
        model_config=model.model_config,
        adapter=model.adapter,
        device=model.device,
        precision=model.precision,
        threads=model.threads,
    )


def model_input_size(model: ModelParams) -> int:
    """The model's input size in pixels from its registry entry or config, without building it."""
    from geo_dfm.models.factory import plan_load

    return int(plan_load(model.name, model.weights, model.model_config).spec.input_size)


# --- plan ----------------------------------------------------------------------------------------------


def window_key(window: Window) -> tuple[int, int, int, int]:
    """``(col_off, row_off, width, height)`` as integers."""
    return int(window.col_off), int(window.row_off), int(window.width), int(window.height)


def open_chip_plan(scene: str, chips: ChipParams, default_size: int, layout: str = "regular", **kw: Any):
    """Open the scene and plan its windows (:func:`tile_tools.grid.plan_chips`, each window once)."""
    from tile_tools.grid import plan_chips

    return plan_chips(scene, default_size=default_size, layout=layout, **chips.as_dict(), **kw)


def plan_stride(plan: Any) -> int:
    """The smallest step (working-grid pixels) between neighbouring chips of ``plan``."""
    if plan.spec is None:  # XYZ tiles: one tile per step
        return int(plan.reader.tile_size)
    grid = plan.reader.grid
    return min(
        plan.spec.stride_px(size, grid, plan.reader.path)
        for size in plan.spec.sizes_px(grid, plan.reader.path)
    )


# --- features ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureBatch:
    """Features of a batch of windows: ``features`` (n, D) pooled chip embeddings, L2-normalised."""

    windows: list[Window]
    features: np.ndarray


class _PreparingReader:
    """A chip source whose chips come with ``prepare(chip)`` as their image (run in the reader threads)."""

    def __init__(self, reader: Any, prepare: PrepareImage) -> None:
        self._reader, self._prepare = reader, prepare

    def read_chip(self, window: Window) -> Chip:
        chip = self._reader.read_chip(window)
        return dataclasses.replace(chip, image=self._prepare(chip))


def iter_features(
    plan: Any,
    encoder: Any,
    progress: Progress,
    batch_size: int = 32,
    prepare: PrepareImage | None = None,
    stage: str = "encode images",
    timer: StageTimer | None = None,
) -> Iterator[FeatureBatch]:
    """Pooled image embeddings of the plan's windows, batch by batch, in plan order, each window once.

    ``stage`` names the progress stage. With ``timer``, the time spent producing the batches (waiting
    for chips, encoding) is added to its ``encode images`` entry; what the caller does with a batch is not.
    """
    from tile_tools.prefetch import iter_chip_batches

    source = plan.reader if prepare is None else _PreparingReader(plan.reader, prepare)
    progress.stage(stage, total=len(plan.windows))

    def timed() -> contextlib.AbstractContextManager[None]:
        return timer.stage("encode images") if timer is not None else contextlib.nullcontext()

    # closing(): a cancelled job stops the reader threads here, before its caller closes the dataset
    with contextlib.closing(iter_chip_batches(source, plan.windows, batch_size)) as batches:
        while True:
            with timed():
                batch = next(batches, None)
                if batch is None:
                    return
                images = [chip.image for chip in batch]
                features = np.asarray(encoder.encode_images(images, batch_size=len(images)), dtype=np.float32)
            yield FeatureBatch([chip.window for chip in batch], features)
            progress.advance(len(batch))
