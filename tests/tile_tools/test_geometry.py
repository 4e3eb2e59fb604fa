"""PixelGrid geometry for rotated, sheared and south-up transforms, against rasterio/GDAL (issue 10 item 8)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Geod
from rasterio.crs import CRS
from rasterio.transform import xy

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.reader import SceneReader

UTM = CRS.from_epsg(32632)
TRANSFORMS = {
    "north-up": Affine(10, 0, 500000, 0, -10, 5600000),
    "south-up": Affine(10, 0, 500000, 0, 10, 5600000),
    "rotated 30°": Affine.translation(500000, 5600000) @ Affine.rotation(30) @ Affine.scale(10, -10),
    "sheared": Affine(10, 4, 500000, -3, -10, 5600000),
}


def rasterio_corners(transform: Affine, width: int, height: int) -> np.ndarray:
    xs, ys = xy(transform, [0, 0, height, height], [0, width, width, 0], offset="ul")
    return np.column_stack([xs, ys])


@pytest.mark.parametrize("name", TRANSFORMS)
def test_bounds_enclose_all_four_corners_as_rasterio_places_them(name):
    grid = PixelGrid(300, 200, TRANSFORMS[name], UTM)
    corners = rasterio_corners(grid.transform, 300, 200)
    np.testing.assert_allclose(np.array(grid.corners), corners)
    expected = (*corners.min(axis=0), *corners.max(axis=0))
    np.testing.assert_allclose(grid.bounds, (expected[0], expected[1], expected[2], expected[3]))


def test_res_is_the_pixel_edge_length_whatever_the_rotation():
    rotated = PixelGrid(10, 10, TRANSFORMS["rotated 30°"], UTM)
    assert rotated.res == pytest.approx((10.0, 10.0))
    assert PixelGrid(10, 10, TRANSFORMS["south-up"], UTM).res == (10.0, 10.0)


def test_pixel_grid_round_trips_through_json_with_wkt_and_gdal_geotransform():
    grid = PixelGrid(300, 200, TRANSFORMS["sheared"], UTM)
    data = json.loads(json.dumps(grid.to_dict()))
    assert data["geotransform"] == list(grid.transform.to_gdal())
    assert CRS.from_wkt(data["crs"]) == UTM
    assert PixelGrid.from_dict(data) == grid
    pixel_only = PixelGrid(5, 4, Affine.identity(), None)
    assert PixelGrid.from_dict(json.loads(json.dumps(pixel_only.to_dict()))) == pixel_only


def test_decimation_to_recognises_decimated_grids_only():
    grid = PixelGrid(1001, 777, TRANSFORMS["north-up"], UTM)
    assert grid.decimation_to(grid) == 1
    assert grid.decimation_to(grid.decimated(8)) == 8
    with pytest.raises(ValueError, match="not a decimated version"):
        grid.decimation_to(
            PixelGrid(126, 98, TRANSFORMS["north-up"] @ Affine.scale(8) @ Affine.translation(1, 0), UTM)
        )


@pytest.mark.parametrize("name", ["rotated 30°", "sheared", "south-up"])
def test_gsd_grid_of_a_rotated_scene_covers_the_whole_scene(make_scene, rng, name):
    """A rotated scene with --gsd lost half its area: its working grid came from wrong bounds."""
    transform = TRANSFORMS[name]
    path = make_scene(rng.integers(1, 255, (3, 120, 160), dtype=np.uint8), transform=transform, nodata=0)
    with rasterio.open(path) as src:
        footprint = shapely.Polygon(rasterio_corners(src.transform, src.width, src.height))
    with SceneReader(path, gsd=10.0) as reader:
        grid = reader.grid
        assert (grid.transform.b, grid.transform.d) == (0.0, 0.0) and grid.res == (10.0, 10.0)
        covered = shapely.box(*grid.bounds)
        assert footprint.difference(covered).area < 1e-6 * footprint.area
        # GDAL's own warp of the scene onto that grid: its valid pixels add up to the scene's area
        chip = reader.read_chip(rasterio.windows.Window(0, 0, grid.width, grid.height))
        valid_area = chip.mask.sum() * 100.0
        assert valid_area == pytest.approx(footprint.area, rel=0.03)
        assert reader.valid_fraction(chip.window) * grid.width * grid.height * 100 == pytest.approx(
            valid_area
        )


@pytest.mark.parametrize(
    ("west", "epsg"),
    [(179.85, 32760), (179.95, 32701)],  # centre 179.95° E: zone 60 S; centre 180.05° = 179.95° W: zone 1 S
)
def test_degree_scene_across_the_antimeridian_gets_the_utm_zone_of_its_centre(make_scene, rng, west, epsg):
    """Not zone 31 (the mean of −179.9° and 179.9°), and the UTM grid covers the scene on both sides."""
    path = make_scene(
        rng.integers(1, 255, (3, 50, 100), dtype=np.uint8),
        crs="EPSG:4326",
        transform=Affine(0.002, 0, west, 0, -0.002, -16.0),
    )
    with SceneReader(path, metric=True) as reader:
        assert reader.grid.crs == CRS.from_epsg(epsg)
        assert math.isclose(reader.grid.res[0], reader.grid.res[1])
        assert (
            reader.valid_fraction(rasterio.windows.Window(0, 0, reader.grid.width, reader.grid.height)) > 0.9
        )
    # with a gsd: the valid pixels add up to the scene's area on the ellipsoid (pyproj's geodesic area)
    lons, lats = [west, west + 0.2, west + 0.2, west], [-16.0, -16.0, -16.1, -16.1]
    area = abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0])
    with SceneReader(path, gsd=20.0) as reader:
        grid = reader.grid
        valid = reader.valid_fraction(rasterio.windows.Window(0, 0, grid.width, grid.height))
        assert valid * grid.width * grid.height * 400.0 == pytest.approx(area, rel=0.02)


def test_a_scene_thinner_than_a_working_pixel_is_told_so_not_called_empty(make_scene):
    # 3 × 3 px of 0.002° at 88° S: 21 m wide, 650 m tall; GDAL's suggested UTM pixel is 154 m
    path = make_scene(
        np.full((3, 3, 3), 9, np.uint8), crs="EPSG:4326", transform=Affine(0.002, 0, 179.98, 0, -0.002, -88.0)
    )
    with pytest.raises(
        InputError, match=r"smaller than one pixel of its 1×5 px working grid .* use a finer gsd"
    ):
        SceneReader(path, metric=True)
    with SceneReader(path, gsd=5.0) as reader:
        assert reader.valid_mask_overview().any()
