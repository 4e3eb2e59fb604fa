"""Property test: the chip grid covers the scene footprint that GDAL computes (issue 10, the systematic guard).

Random small scenes with rotated, sheared, north-up or south-up geotransforms, in a metric CRS or in
degrees (near the poles and across the antimeridian), read on the source grid, on a ``gsd`` grid or on a
metric (UTM) working grid. The footprint is the scene's outline (its pixel edges, densified) carried
into the working CRS by GDAL's own coordinate transformation (``rasterio.warp.transform``); it must lie
inside the union of the planned chip windows.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as gdal_transform
from rasterio.warp import transform_bounds

from tile_tools.errors import InputError
from tile_tools.grid import ChipGridSpec
from tile_tools.pixel_grid import PixelGrid
from tile_tools.reader import SceneReader

EDGE_POINTS = 25
MAX_EXAMPLES = int(os.environ.get("GEO_DFM_PROPERTY_EXAMPLES", "40"))  # 800 for a long search


def outline(width: int, height: int) -> np.ndarray:
    """(4·EDGE_POINTS, 2) pixel coordinates (col, row) along the outer edges of a width × height grid."""
    t = np.linspace(0.0, 1.0, EDGE_POINTS, endpoint=False)
    top = np.column_stack([t * width, np.zeros_like(t)])
    right = np.column_stack([np.full_like(t, width), t * height])
    bottom = np.column_stack([(1 - t) * width, np.full_like(t, height)])
    left = np.column_stack([np.zeros_like(t), (1 - t) * height])
    return np.concatenate([top, right, bottom, left])


@st.composite
def scenes(draw):
    """(crs, transform, width, height, mode, gsd)."""
    width, height = draw(st.integers(3, 40)), draw(st.integers(3, 40))
    rotation = draw(st.sampled_from([0.0, 0.0, 90.0, 180.0]) | st.floats(-180.0, 180.0))
    shear = draw(st.sampled_from([0.0]) | st.floats(-25.0, 25.0))
    flip = draw(st.sampled_from([-1.0, 1.0]))  # north-up (negative y resolution) or south-up
    degrees = draw(st.booleans())
    if degrees:
        res = draw(st.floats(1e-4, 2e-3))
        lon = draw(st.sampled_from([179.98, -180.02]) | st.floats(-179.0, 179.0))  # past ±180° or anywhere
        lat = draw(st.sampled_from([-84.0, 84.0, -88.0, 88.0]) | st.floats(-80.0, 80.0))
        crs, origin, metres = "EPSG:4326", (lon, lat), res * 111_000 * max(0.05, math.cos(math.radians(lat)))
        mode = draw(st.sampled_from(["source", "metric", "gsd"]))
    else:
        res = draw(st.floats(0.5, 30.0))
        crs, origin, metres = "EPSG:32632", (500_000.0, 5_600_000.0), res
        mode = draw(st.sampled_from(["source", "gsd"]))
    transform = (
        Affine.translation(*origin)
        @ Affine.rotation(rotation)
        @ Affine.shear(shear, 0.0)
        @ Affine.scale(res, flip * res)
    )
    gsd = metres * draw(st.sampled_from([0.5, 1.0, 2.3])) if mode == "gsd" else None
    return crs, transform, width, height, mode, gsd


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scene=scenes(), chip=st.integers(2, 12), overlap=st.sampled_from(["0", "0.25", "50%"]))
def test_the_chip_windows_cover_gdal_s_footprint_of_the_scene(scene, chip, overlap):
    crs, transform, width, height, mode, gsd = scene
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scene.tif"
        profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8", crs=crs)
        with rasterio.open(path, "w", transform=transform, **profile) as dst:
            dst.write(np.full((1, height, width), 9, np.uint8))
        try:
            reader = SceneReader(path, gsd=gsd, metric=mode == "metric")
        except InputError as exc:  # refused only when the scene is thinner than a working pixel
            assert "smaller than one pixel of its" in str(exc)
            assert_thinner_than_a_working_pixel(path, gsd)
            return
        with reader:
            grid = reader.grid
            size = min(chip, grid.width, grid.height)
            windows = ChipGridSpec.from_options(str(size), overlap, edge="shift").windows(grid)
    # the footprint by GDAL: source pixel edges → source CRS → working CRS → working-grid pixels
    cols, rows = _apply(~grid.transform, footprint_in(grid.crs, crs, transform, width, height))
    footprint = shapely.make_valid(shapely.Polygon(np.column_stack([cols, rows])))
    covered = shapely.union_all(
        [shapely.box(w.col_off, w.row_off, w.col_off + w.width, w.row_off + w.height) for w in windows]
    )
    outside = footprint.difference(covered).area
    assert outside <= 1e-4 * footprint.area, (
        f"{mode}: {outside:.3g} of {footprint.area:.3g} px² outside the chips"
    )


def footprint_in(dst_crs, src_crs, transform: Affine, width: int, height: int) -> np.ndarray:
    """(n, 2) x, y of the scene's densified outline in ``dst_crs`` (GDAL's coordinate transformation)."""
    xs, ys = _apply(transform, outline(width, height))
    return np.column_stack(gdal_transform(src_crs, dst_crs, xs, ys))


def assert_thinner_than_a_working_pixel(path: Path, gsd: float | None) -> None:
    """A convex region with no pixel centre inside is less than ~2.2 pixels wide (flatness in 2-D)."""
    with rasterio.open(path) as src:
        bounds = PixelGrid(src.width, src.height, src.transform, src.crs).bounds
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *bounds)
        lon = ((west + east) / 2 + 180) % 360 - 180
        dst = (
            src.crs
            if src.crs.is_projected
            else CRS.from_epsg((32600 if north > 0 else 32700) + int((lon + 180) // 6) % 60 + 1)
        )
        with WarpedVRT(src, crs=dst) as suggested:
            res = gsd or suggested.res[0]
        points = footprint_in(dst, src.crs, src.transform, src.width, src.height)
    box = shapely.Polygon(points).minimum_rotated_rectangle.exterior.coords
    sides = [math.dist(box[i], box[i + 1]) for i in range(2)]
    assert min(sides) < 2.2 * res, f"a scene {min(sides):.3g} m wide was refused for {res:.3g} m pixels"


def _apply(affine: Affine, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b, c, d, e, f = affine[:6]
    x, y = points[:, 0], points[:, 1]
    return a * x + b * y + c, d * x + e * y + f
