"""Training pairs from a labelled map: which chips of a scene carry which label.

The labels layer (any vector file GDAL reads, any CRS) is reprojected to the scene's working CRS.
A chip's label is the majority of its pixels after rasterising the polygons that meet it on the
chip's own window grid (``rasterio.features.rasterize``; where polygons overlap, the later feature
wins; ties go to the label first in alphabetical order). Its ``coverage`` is that label's share of
the chip's pixels; chips below ``min_coverage`` are dropped. Chips meeting no polygon at all are the
candidates for negatives ("unlabelled areas").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.crs import CRS
from rasterio.windows import Window

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid


@dataclass(frozen=True, eq=False)
class LabelLayer:
    """Labelled polygons: ``frame`` (GeoDataFrame with ``label`` text and polygonal ``geometry``) in ``crs``."""

    path: Path
    field: str
    frame: object  # geopandas.GeoDataFrame
    crs: CRS
    labels: tuple[str, ...]
    _projected: dict = field(default_factory=dict, repr=False)

    def in_crs(self, crs: CRS):  # -> geopandas.GeoDataFrame
        """The polygons in ``crs`` (reprojected once per CRS)."""
        key = crs.to_wkt()
        if key not in self._projected:
            self._projected[key] = (
                self.frame if CRS.from_user_input(self.frame.crs) == crs else self.frame.to_crs(crs)
            )
        return self._projected[key]


def read_label_layer(path: str | os.PathLike[str], label_field: str, layer: str | None = None) -> LabelLayer:
    """Read the labels; a missing file or field, no CRS or no labelled polygon is an InputError."""
    import geopandas as gpd

    source = Path(path).expanduser()
    if not source.exists():
        raise InputError(path, "labels file not found")
    try:
        frame = gpd.read_file(source, layer=layer) if layer else gpd.read_file(source)
    except Exception as exc:
        raise InputError(path, f"not a vector file GDAL can read ({str(exc).splitlines()[0]})") from None
    if label_field not in frame.columns or label_field == frame.geometry.name:
        fields = [c for c in frame.columns if c != frame.geometry.name]
        raise InputError(
            "label_field",
            f"{source} has no field {label_field!r}; its fields: {', '.join(map(str, fields)) or 'none'}",
        )
    if frame.crs is None:
        raise InputError(path, "the labels layer has no CRS")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty & frame[label_field].notna()]
    frame = frame[frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    labels = frame[label_field].astype(str).str.strip()
    frame = gpd.GeoDataFrame({"label": labels}, geometry=frame.geometry.values, crs=frame.crs)
    frame = frame[frame["label"] != ""].reset_index(drop=True)
    if frame.empty:
        raise InputError(path, f"no polygon with a {label_field!r} value")
    return LabelLayer(
        source.absolute(),
        label_field,
        frame,
        CRS.from_user_input(frame.crs),
        tuple(sorted(set(frame["label"]))),
    )


@dataclass(frozen=True)
class LabelledWindow:
    """A chip window with its majority ``label`` and that label's ``coverage`` (0-1) of the chip."""

    window: Window
    label: str
    coverage: float


@dataclass(frozen=True)
class WindowLabels:
    """The outcome of :func:`label_windows`: labelled chips, chips meeting no polygon, and how many
    chips met polygons but stayed below the minimum coverage."""

    labelled: list[LabelledWindow]
    unlabelled: list[Window]
    below_coverage: int


def label_windows(
    grid: PixelGrid, windows: Sequence[Window], layer: LabelLayer, min_coverage: float = 0.5
) -> WindowLabels:
    """Majority label and coverage of every window of ``grid`` (see the module docstring)."""
    import shapely
    from rasterio.features import rasterize

    from tile_tools.aoi import window_footprints

    if not 0.0 < min_coverage <= 1.0:
        raise InputError("min_coverage", f"must be in (0, 1], got {min_coverage}")
    if grid.crs is None:
        raise InputError("scene", "the scene has no CRS: map labels cannot be placed on it")
    polygons = layer.in_crs(grid.crs)
    geometries = np.asarray(polygons.geometry.values)
    values = np.array([layer.labels.index(label) + 1 for label in polygons["label"]], dtype=np.int32)
    tree = shapely.STRtree(geometries)
    footprints = window_footprints(list(windows), grid)
    labelled, unlabelled, below = [], [], 0
    for window, footprint in zip(windows, footprints, strict=True):
        hits = np.sort(tree.query(footprint, predicate="intersects"))
        if hits.size == 0:
            unlabelled.append(window)
            continue
        height, width = int(window.height), int(window.width)
        raster = rasterize(
            zip(geometries[hits], values[hits].tolist(), strict=True),
            out_shape=(height, width),
            transform=grid.window_transform(window),
            fill=0,
            dtype="int32",
        )
        counts = np.bincount(raster.ravel(), minlength=len(layer.labels) + 1)
        if counts[1:].sum() == 0:
            unlabelled.append(window)
            continue
        best = int(np.argmax(counts[1:])) + 1
        coverage = float(counts[best] / (height * width))
        if coverage < min_coverage:
            below += 1
            continue
        labelled.append(LabelledWindow(window, layer.labels[best - 1], coverage))
    return WindowLabels(labelled, unlabelled, below)
