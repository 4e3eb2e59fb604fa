"""``search``: text-to-image retrieval over the chips of one or more scenes.

Chip embeddings come from an :class:`~geo_dfm.jobs.embedding_index.EmbeddingIndex` (a folder, by
default ``geo-dfm-embeddings`` beside the output) when it holds the scene with the same model and chip
settings; otherwise the scene is chipped and encoded once and its embeddings are streamed into the
index. Results are the ``top_k`` chips by cosine similarity over all scenes, written as a GeoPackage
(layer ``results``) in the first scene's CRS. When every scene is in the index, only the text is
encoded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from geo_dfm.jobs.embedding_index import (
    INDEX_DIR_NAME,
    EmbeddingIndex,
    IndexKey,
    SceneEmbeddings,
    scene_stamp,
)
from geo_dfm.jobs.params import ChipParams, ModelParams, param
from geo_dfm.jobs.pipeline import (
    JobRun,
    check_queries,
    check_scene,
    iter_features,
    model_input_size,
    open_chip_plan,
    start_job,
)
from geo_dfm.progress import Progress
from tile_tools.errors import InputError
from tile_tools.locks import TargetLock

log = logging.getLogger(__name__)

#: Rows of an embedding matrix scored at once (bounded memory for huge indexes).
RANK_CHUNK = 65_536


@dataclass(frozen=True)
class SearchParams:
    """Everything ``search`` needs."""

    scenes: tuple[str, ...] = param(help="Scenes to search (any GDAL rasters).")
    query: str = param(help="The text to look for.")
    output: str = param(help="Output GeoPackage (.gpkg).")
    top_k: int = param(20, help="How many chips to return.")
    overwrite: bool = param(False, help="Replace an existing results GeoPackage written by geo-dfm.")
    index: str | None = param(
        None, help="Embedding index folder to reuse and extend (default: beside the output)."
    )
    chips: ChipParams = field(default_factory=ChipParams)
    model: ModelParams = field(default_factory=ModelParams)

    def inputs(self) -> tuple[str, ...]:
        return (*self.scenes, *self.chips.input_files(), *self.model.input_files())


def check_params(params: SearchParams) -> SearchParams:
    if not params.scenes:
        raise InputError("scenes", "give at least one scene, then the query text")
    check_queries((params.query,))
    if params.top_k < 1:
        raise InputError("top_k", f"must be at least 1, got {params.top_k}")
    if not params.output.lower().endswith(".gpkg"):
        raise InputError(params.output, "the search output is a GeoPackage: give a path ending in .gpkg")
    if Path(params.output).is_dir():
        raise InputError(params.output, "output path is a folder; give a .gpkg file path")
    scenes = tuple(check_scene(s) for s in params.scenes)
    if len(set(scenes)) != len(scenes):
        raise InputError("scenes", "the same scene is given twice")
    return replace(params, scenes=scenes)


def index_setup(model: ModelParams, chips: ChipParams) -> dict[str, Any]:
    """What the embeddings depend on besides the scene file: model identity and chip settings
    (resolved from the registry and the files, without building the model)."""
    from geo_dfm.models.factory import plan_load

    plan = plan_load(model.name, model.weights, model.model_config)
    identity: dict[str, Any] = {
        "name": plan.spec.name,
        "architecture": plan.spec.architecture,
        "weights": scene_stamp(plan.weights),
        "adapter": scene_stamp(Path(model.adapter) / "adapter_config.json") if model.adapter else None,
        "input_size": plan.spec.input_size,
    }
    setup: dict[str, Any] = {"model": identity, "chips": chips.as_dict()}
    if chips.aoi and Path(chips.aoi).exists():
        setup["aoi_stamp"] = scene_stamp(chips.aoi)
    return setup


def index_path_for(params: SearchParams, target: Path) -> Path:
    path = Path(params.index).expanduser().absolute() if params.index else target.parent / INDEX_DIR_NAME
    for scene in params.inputs():
        if os.path.abspath(scene) == str(path):
            raise InputError(params.index or str(path), "the index path is one of the inputs")
    return path


def encode_scene(
    job: JobRun, index: EmbeddingIndex, key: IndexKey, scene: str, params: SearchParams, encoder: Any
) -> SceneEmbeddings:
    """Chip and encode one scene (every chip once), streaming the embeddings into the index."""
    with open_chip_plan(scene, params.chips, encoder.input_size) as plan:
        windows = np.array(
            [(w.col_off, w.row_off, w.width, w.height) for w in plan.windows], dtype=np.int64
        ).reshape(-1, 4)
        writer = index.writer(key, scene, plan.reader.grid, windows, encoder.embed_dim)
        try:
            stage = f"encode {Path(scene).name}"
            for batch in iter_features(
                plan, encoder, job.progress, params.model.batch_size, stage=stage, timer=job.timer
            ):
                writer.append(batch.features)
        except BaseException:
            writer.discard()
            raise
        return writer.commit()


def is_search_results(path: Path) -> bool:
    """True for a GeoPackage holding only a ``results`` layer (what search writes, so may replace)."""
    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
    except Exception:
        return False
    return [str(name) for name, _ in layers] == ["results"]


def planned_grid(scene: str, chips: ChipParams, default_size: int):
    """The working grid of ``scene`` after planning its chips (which checks every chip setting)."""
    with open_chip_plan(scene, chips, default_size) as plan:
        return plan.reader.grid


def top_matches(entries: list[SceneEmbeddings], query: np.ndarray, k: int) -> list[tuple[float, int, int]]:
    """The ``k`` best ``(score, entry index, row)`` over every entry, best first, scoring in chunks."""
    best: list[tuple[float, int, int]] = []
    for owner, entry in enumerate(entries):
        for start in range(0, len(entry), RANK_CHUNK):
            scores = np.asarray(entry.embeddings[start : start + RANK_CHUNK], np.float32) @ query
            take = np.argsort(-scores, kind="stable")[:k]
            best.extend((float(scores[i]), owner, start + int(i)) for i in take)
        best = sorted(best, key=lambda item: (-item[0], item[1], item[2]))[:k]
    return best


def run_search(params: SearchParams, progress: Progress) -> dict[str, Any]:
    """Run ``search`` and return its summary."""
    import geopandas as gpd

    from tile_tools.aoi import window_footprints
    from tile_tools.vector_io import write_geopackage

    params = check_params(params)
    with start_job(
        "search",
        params.output,
        params.overwrite,
        progress,
        params.inputs(),
        folder=False,
        is_ours=is_search_results,
    ) as job:
        index_path = index_path_for(params, job.target)
        job.hold(TargetLock(index_path))  # one run at a time extends an index
        index = EmbeddingIndex(index_path)
        setup = index_setup(params.model, params.chips)
        keys = [IndexKey(scene_stamp(scene), setup) for scene in params.scenes]
        cached = [index.get(key) for key in keys]
        default_size = model_input_size(params.model)
        for scene, entry in zip(
            params.scenes, cached, strict=True
        ):  # every input checked before the model loads
            grid = entry.grid if entry is not None else planned_grid(scene, params.chips, default_size)
            if grid.crs is None:
                raise InputError(scene, "the scene has no CRS; search results need georeferenced scenes")
        encoder = job.load_encoder(params.model)
        with job.stage("encode texts"):
            query = np.asarray(encoder.encode_texts([params.query])[0], np.float32)
        entries: list[SceneEmbeddings] = []
        encoded = reused = 0
        for scene, key, entry in zip(params.scenes, keys, cached, strict=True):
            if entry is None:
                entry = encode_scene(job, index, key, scene, params, encoder)
                encoded += len(entry)
            else:
                log.info("%s: %d chip embeddings reused from %s", scene, len(entry), index_path)
                reused += len(entry)
            entries.append(entry)
        with job.stage("rank"):
            matches = top_matches(entries, query, params.top_k)
        out_crs = entries[0].grid.crs
        geometries, records = [], {"rank": [], "scene": [], "score": [], "query": [], "window": []}
        for rank, (score, owner, row) in enumerate(matches, start=1):
            entry = entries[owner]
            shape = next(iter(window_footprints([Window(*map(int, entry.windows[row]))], entry.grid)))
            if entry.grid.crs != out_crs:
                shape = gpd.GeoSeries([shape], crs=entry.grid.crs.to_wkt()).to_crs(out_crs.to_wkt()).iloc[0]
            geometries.append(shape)
            records["rank"].append(rank)
            records["scene"].append(entry.scene)
            records["score"].append(score)
            records["query"].append(params.query)
            records["window"].append(",".join(str(int(v)) for v in entry.windows[row]))
        frame = gpd.GeoDataFrame(records, geometry=geometries, crs=out_crs.to_wkt())
        with job.stage("write outputs"):
            write_geopackage({"results": frame}, job.file)
        results = [
            {"rank": r, "scene": s, "score": sc, "bounds": list(g.bounds), "window": w}
            for r, s, sc, g, w in zip(
                records["rank"],
                records["scene"],
                records["score"],
                geometries,
                records["window"],
                strict=True,
            )
        ]
        return job.finish(
            model=encoder.describe(),
            parameters={
                "top_k": params.top_k,
                "chips": params.chips.as_dict(),
                "model": params.model.as_dict(),
            },
            crs=out_crs,
            outputs={"results": str(job.target), "index": str(index_path)},
            query=params.query,
            scenes=list(params.scenes),
            results=results,
            encoded_chips=encoded,
            reused_chips=reused,
        )
