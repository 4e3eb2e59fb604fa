"""Areas of interest: bbox or vector file in any CRS, reprojected; windows filtered; AOI outside → error."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from tile_tools.aoi import load_aoi, window_footprints, windows_in_aoi
from tile_tools.errors import InputError
from tile_tools.grid import ChipGridSpec, plan_chips, plan_windows
from tile_tools.reader import SceneReader

# the conftest scene: 10 m pixels from (500000, 5600000) in UTM 32N


@pytest.fixture
def scene(make_scene, rng):
    return make_scene(rng.integers(1, 255, (3, 200, 200), dtype=np.uint8))


def test_bbox_in_the_scene_crs_keeps_the_windows_meeting_it(scene):
    with SceneReader(scene) as reader:
        spec = ChipGridSpec.from_options("50", "0")
        # bbox covering pixel columns 0-59 and rows 0-39 → chip columns 0-50, 50-100 and rows 0-50
        windows = plan_windows(
            reader, spec, load_aoi("500000,5599600,500600,5600000", reader.grid.crs, reader.grid.crs)
        )
        assert {(w.col_off, w.row_off) for w in windows} == {(0, 0), (50, 0)}


def test_vector_file_in_another_crs_is_reprojected(tmp_path, scene):
    # polygon drawn in UTM, stored in EPSG:4326 (what GDAL itself gives for that polygon)
    utm_polygon = box(500900, 5598900, 501100, 5599100)
    lonlat = shape(transform_geom("EPSG:32632", "EPSG:4326", mapping(utm_polygon)))
    path = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame({"name": ["a"]}, geometry=[lonlat], crs="EPSG:4326").to_file(path)
    with SceneReader(scene) as reader:
        aoi = load_aoi(path, reader.grid.crs, reader.grid.crs)
        assert aoi.crs == reader.grid.crs
        assert aoi.geometry.symmetric_difference(utm_polygon).area < 1.0  # m², reprojection round trip
    with plan_chips(scene, chip_size="50", overlap="0", aoi=str(path)) as plan:
        # the polygon spans pixels 90-110 in both axes → the 4 chips around (100, 100)
        assert {(w.col_off, w.row_off) for w in plan.windows} == {(50, 50), (100, 50), (50, 100), (100, 100)}


def test_bbox_with_a_crs_suffix(scene):
    utm = box(500900, 5598900, 501100, 5599100)
    lonlat = shape(transform_geom("EPSG:32632", "EPSG:4326", mapping(utm)))
    text = ",".join(f"{v:.9f}" for v in lonlat.bounds) + "@EPSG:4326"
    with plan_chips(scene, chip_size="50", overlap="0", aoi=text) as plan:
        assert {(w.col_off, w.row_off) for w in plan.windows} == {(50, 50), (100, 50), (50, 100), (100, 100)}


def test_footprints_are_rasterio_window_bounds(scene):
    import rasterio.windows

    with SceneReader(scene) as reader:
        windows = ChipGridSpec.from_options("64", "0.5").windows(reader.grid)
        for window, footprint in zip(windows, window_footprints(windows, reader.grid), strict=True):
            assert footprint.bounds == pytest.approx(rasterio.windows.bounds(window, reader.grid.transform))


def test_aoi_errors(tmp_path, scene):
    with SceneReader(scene) as reader:
        with pytest.raises(InputError, match="outside the scene"):
            windows_in_aoi([], reader.grid, box(0, 0, 10, 10))
        with pytest.raises(InputError, match="AOI file not found"):
            load_aoi(tmp_path / "nope.gpkg", reader.grid.crs, reader.grid.crs)
        with pytest.raises(InputError, match="min < max"):
            load_aoi("5,5,1,1", reader.grid.crs, reader.grid.crs)
    with pytest.raises(InputError, match="outside the scene"):
        plan_chips(scene, chip_size="50", aoi="0,0,10,10")
    no_crs = tmp_path / "nocrs.gpkg"
    gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(no_crs)
    with pytest.raises(InputError, match="has no CRS"):
        plan_chips(scene, aoi=str(no_crs))
