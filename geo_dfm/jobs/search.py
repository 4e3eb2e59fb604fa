"""``search``: text-to-image retrieval over the chips of one or more scenes.

Chip embeddings come from an :class:`~geo_dfm.jobs.embedding_index.EmbeddingIndex` (``.npz``,
by default ``geo-dfm-embeddings.npz`` beside the output) when it holds the scene with the same
model and chip settings; otherwise the scene is chipped and encoded once and the index is
extended. Results are the ``top_k`` chips by cosine similarity over all scenes, written as a
GeoPackage (layer ``results``) in the first scene's CRS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from geo_dfm.jobs.common import (
    check_output_free,
    check_queries,
    check_scene,
    encode_windows,
    load_job_encoder,
    model_input_size,
    model_summary,
    open_chip_plan,
    text_embeddings,
    window_key,
)
from geo_dfm.jobs.embedding_index import (
    INDEX_FILE_NAME,
    EmbeddingIndex,
    IndexKey,
    SceneEmbeddings,
    scene_stamp,
)
from geo_dfm.jobs.params import ChipParams, ModelParams
from geo_dfm.jobs.summary import StageTimer, make_summary
from geo_dfm.progress import Progress
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchParams:
    """Everything ``search`` needs."""

    scenes: tuple[str, ...]
    query: str
    output: str
    top_k: int = 20
    overwrite: bool = False
    index: str | None = None
    chips: ChipParams = field(default_factory=ChipParams)
    model: ModelParams = field(default_factory=ModelParams)


def index_setup(encoder: Any, chips: ChipParams) -> dict[str, Any]:
    """What the embeddings depend on besides the scene file: model identity and chip settings."""
    model = {k: v for k, v in encoder.describe().items() if k != "device"}
    for key in ("weights", "adapter"):
        path = model.get(key)
        if path and Path(str(path)).exists():
            model[f"{key}_stamp"] = scene_stamp(path)
    setup: dict[str, Any] = {
        "model": model,
        "chips": chips.as_dict(),
        "default_size": model_input_size(encoder),
    }
    if chips.aoi and Path(chips.aoi).exists():
        setup["aoi_stamp"] = scene_stamp(chips.aoi)
    return setup


def scene_embeddings(scene: Path, encoder: Any, params: SearchParams, progress: Progress) -> SceneEmbeddings:
    """Chip and encode one scene (every chip once)."""
    with open_chip_plan(scene, params.chips, model_input_size(encoder)) as plan:
        embeddings = encode_windows(
            plan.reader,
            plan.windows,
            encoder,
            params.model.batch_size,
            progress,
            stage=f"encode {scene.name}",
        )
        grid = plan.reader.grid
        return SceneEmbeddings(
            scene=str(scene),
            crs_wkt=grid.crs.to_wkt() if grid.crs is not None else "",
            transform=tuple(grid.transform)[:6],
            windows=np.array([window_key(w) for w in plan.windows], dtype=np.int64).reshape(-1, 4),
            embeddings=embeddings,
        )


def footprints(entry: SceneEmbeddings, rows: np.ndarray) -> list:
    """Chip footprints (shapely polygons) in the entry's CRS."""
    from tile_tools.aoi import window_footprints

    grid = PixelGrid(1, 1, Affine(*entry.transform), None)
    windows = [Window(*map(int, entry.windows[i])) for i in rows]
    return list(window_footprints(windows, grid))


def run_search(params: SearchParams, progress: Progress) -> dict[str, Any]:
    """Run ``search`` and return its summary."""
    import geopandas as gpd

    from tile_tools.vector_io import write_geopackage

    timer = StageTimer()
    check_queries((params.query,))
    if not params.scenes:
        raise InputError("SCENE", "give at least one scene")
    if params.top_k < 1:
        raise InputError("--top-k", f"must be at least 1, got {params.top_k}")
    target = check_output_free(params.output, params.overwrite)
    if target.suffix.lower() != ".gpkg":
        raise InputError(target, "the search output is a GeoPackage: give a path ending in .gpkg")
    if target.is_dir():
        raise InputError(target, "output path is a folder; give a .gpkg file path")
    scenes = [check_scene(s) for s in params.scenes]
    if len(set(scenes)) != len(scenes):
        raise InputError("SCENE", "the same scene is given twice")
    index_path = Path(params.index).absolute() if params.index else target.parent / INDEX_FILE_NAME

    with timer.stage("load model"):
        progress.stage("load model")
        encoder = load_job_encoder(params.model)
    with timer.stage("encode texts"):
        query = text_embeddings(encoder, [params.query])[0]
    setup = index_setup(encoder, params.chips)
    index = EmbeddingIndex(index_path)
    entries: list[SceneEmbeddings] = []
    encoded = reused = 0
    with timer.stage("encode images"):
        for scene in scenes:
            key = IndexKey(scene_stamp(scene), setup)
            entry = index.get(key)
            if entry is None:
                entry = scene_embeddings(scene, encoder, params, progress)
                index.put(key, entry)
                encoded += len(entry)
            else:
                log.info("%s: %d chip embeddings reused from %s", scene, len(entry), index_path)
                reused += len(entry)
            entries.append(entry)
    if index.changed:
        with timer.stage("save index"):
            index.save()

    with timer.stage("rank"):
        progress.stage("rank")
        scores = [entry.embeddings @ query for entry in entries]
        flat = np.concatenate(scores)
        owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(scores)])
        local = np.concatenate([np.arange(len(s)) for s in scores])
        order = np.argsort(-flat, kind="stable")[: params.top_k]

    out_crs = CRS.from_wkt(entries[0].crs_wkt) if entries[0].crs_wkt else None
    if out_crs is None:
        raise InputError(scenes[0], "the scene has no CRS; search results need georeferenced scenes")
    geometries = []
    for rank_index in order:
        entry = entries[owner[rank_index]]
        if not entry.crs_wkt:
            raise InputError(entry.scene, "the scene has no CRS; search results need georeferenced scenes")
        shape = footprints(entry, np.array([local[rank_index]]))[0]
        crs = CRS.from_wkt(entry.crs_wkt)
        if crs != out_crs:
            shape = gpd.GeoSeries([shape], crs=crs.to_wkt()).to_crs(out_crs.to_wkt()).iloc[0]
        geometries.append(shape)
    records = {
        "rank": np.arange(1, len(order) + 1),
        "scene": [entries[owner[i]].scene for i in order],
        "score": [float(flat[i]) for i in order],
        "query": [params.query] * len(order),
        "window": [",".join(str(int(v)) for v in entries[owner[i]].windows[local[i]]) for i in order],
    }
    frame = gpd.GeoDataFrame(records, geometry=geometries, crs=out_crs.to_wkt())
    with timer.stage("write outputs"):
        write_geopackage({"results": frame}, target)
    results = [
        {"rank": int(r), "scene": s, "score": sc, "bounds": list(g.bounds), "window": w}
        for r, s, sc, g, w in zip(
            records["rank"], records["scene"], records["score"], geometries, records["window"], strict=True
        )
    ]
    return make_summary(
        "search",
        model_summary(encoder),
        {
            "top_k": params.top_k,
            "chips": params.chips.as_dict(),
            "model": params.model.as_dict(),
        },
        timer,
        out_crs,
        {"results": str(target), "index": str(index_path)},
        query=params.query,
        scenes=[str(s) for s in scenes],
        results=results,
        encoded_chips=encoded,
        reused_chips=reused,
    )
