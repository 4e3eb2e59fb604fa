"""The run's GeoPackage: every scene's vectors in one file, written by one writer at the end.

``OUT/annotations.gpkg``, all layers in the run CRS, rows in scene input order, each with a ``scene``
column (the scene id):

- ``chips`` (classify's chip labels: label, confidence, top3, area_m2), ``regions`` (classify's dissolved
  label regions: label, mean_confidence, area_m2), ``hotspots`` (localize's hot regions: query, max_score,
  mean_score, area_m2); areas stay those measured in each scene's own CRS;
- ``scenes``: one row per scene of the run, footprint (the scene's bounds, densified before
  reprojection; empty when the scene could not be read), status, code, error, started, finished,
  seconds, seconds per job, chips, worker and the scene's job folders (relative to OUT).

Scenes are read and appended one at a time (memory: one scene's vectors), into a temporary file that
replaces the GeoPackage only when complete (:func:`tile_tools.atomic.atomic_file`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rasterio.crs import CRS

from geo_dfm.batch.folder import SCENES
from geo_dfm.batch.journal import SceneRecord
from geo_dfm.batch.sources import SceneRef
from tile_tools.atomic import atomic_file

#: Segments per side of a footprint before it is reprojected (edges stay close to true curves).
FOOTPRINT_SEGMENTS = 16


@dataclass(frozen=True)
class LayerSource:
    """Run layer ``name`` gathers layer ``layer`` of ``file`` in each scene's ``job`` folder."""

    name: str
    job: str
    file: str
    layer: str


LAYER_SOURCES = (
    LayerSource("chips", "classify", "labels.gpkg", "chips"),
    LayerSource("regions", "classify", "labels.gpkg", "regions"),
    LayerSource("hotspots", "localize", "regions.gpkg", "regions"),
)


def write_run_geopackage(
    path: Path,
    scenes: Sequence[SceneRef],
    records: Mapping[str, SceneRecord],
    jobs: Sequence[str],
    job_folder: Any,
    crs: CRS,
) -> dict[str, int]:
    """Write the run's GeoPackage at ``path`` (see the module docstring); rows per layer.

    ``job_folder(scene_id, job) -> Path`` locates a scene's job output folder.
    """
    import pyogrio

    rows: dict[str, int] = {}
    with atomic_file(path) as tmp:
        for source in LAYER_SOURCES:
            if source.job not in jobs:
                continue
            count = 0
            for scene in scenes:
                record = records.get(scene.id)
                file = job_folder(scene.id, source.job) / source.file
                if record is None or not record.done or not file.is_file():
                    continue
                frame = pyogrio.read_dataframe(file, layer=source.layer)
                frame.insert(0, "scene", scene.id)
                _append(tmp, source.name, frame.to_crs(crs), created=source.name in rows)
                count += len(frame)
                rows[source.name] = count
            rows.setdefault(source.name, 0)
        frame = scenes_frame(scenes, records, jobs, job_folder, crs)
        _append(tmp, "scenes", frame, created=False)
        rows["scenes"] = len(frame)
    return rows


def _append(path: Path, layer: str, frame: Any, created: bool) -> None:
    import pyogrio

    pyogrio.write_dataframe(
        frame, path, layer=layer, driver="GPKG", append=created, promote_to_multi=True,
        geometry_type="MultiPolygon",
    )  # fmt: skip


def footprint_in(record: SceneRecord, crs: CRS) -> Any:
    """The record's footprint polygon in ``crs`` (``None`` when unknown)."""
    import geopandas as gpd
    from shapely import wkt

    if record.footprint is None or record.crs is None:
        return None
    polygon = wkt.loads(record.footprint)
    longest = max(polygon.length / 4, 1e-12)
    series = gpd.GeoSeries([polygon], crs=record.crs).segmentize(longest / FOOTPRINT_SEGMENTS)
    return series.to_crs(crs).iloc[0]


def scenes_frame(
    scenes: Sequence[SceneRef],
    records: Mapping[str, SceneRecord],
    jobs: Sequence[str],
    job_folder: Any,
    crs: CRS,
) -> Any:
    """The ``scenes`` layer (one row per scene, in input order)."""
    import geopandas as gpd

    rows, geometries = [], []
    for scene in scenes:
        record = records.get(scene.id)
        row: dict[str, Any] = {"scene": scene.id, "source": scene.source}
        if record is None:  # not run (cannot happen at the end of a run; kept for partial merges)
            row.update(status="pending", code=None, error=None, started=None, finished=None, seconds=None)
            row.update(chips=None, worker=None)
            geometries.append(None)
        else:
            row.update(
                status=record.status, code=record.code, error=record.error, started=record.started,
                finished=record.finished, seconds=record.seconds, chips=record.chips, worker=record.worker,
            )  # fmt: skip
            geometries.append(footprint_in(record, crs))
        for job in jobs:
            seconds = record.jobs.get(job) if record is not None else None
            row[f"{job}_seconds"] = seconds
            # relative to OUT, where the GeoPackage is: the run's folder can be moved as a whole
            row[f"{job}_folder"] = (
                f"{SCENES}/{scene.id}/{job}" if record is not None and record.done else None
            )
        rows.append(row)
    return gpd.GeoDataFrame(rows, geometry=geometries, crs=crs)
