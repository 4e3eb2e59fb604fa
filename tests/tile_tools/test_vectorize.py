"""Vectorizing: areas in m² (also on degree CRSs), attributes, CRSs checked with geopandas."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box

from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.vector_io import write_geopackage
from tile_tools.vectorize import chip_labels_to_polygons, dissolve_labels, heatmap_to_polygons

UTM = PixelGrid(120, 100, Affine(10.0, 0, 500_000.0, 0, -10.0, 5_600_000.0), CRS.from_epsg(32632))
# 0.001° pixels at 60° N: about 55.7 m × 111.4 m
WGS84 = PixelGrid(120, 100, Affine(0.001, 0, 10.0, 0, -0.001, 60.05), CRS.from_epsg(4326))


def disk_mask(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def test_polygon_area_matches_the_mask_within_one_pixel_row() -> None:
    mask = disk_mask(UTM.shape, (50, 60), 21.5)
    heat = np.where(mask, 0.9, 0.1)
    frame = heatmap_to_polygons(heat, UTM, threshold=0.5, query="runway")
    assert len(frame) == 1
    truth = mask.sum() * 100.0  # 10 m pixels
    row_of_pixels = mask.any(axis=0).sum() * 100.0
    assert abs(frame.area_m2.iloc[0] - truth) <= row_of_pixels
    assert abs(frame.geometry.area.iloc[0] - truth) <= row_of_pixels  # geopandas' own planar area
    assert frame.crs.equals(UTM.crs.to_wkt())
    row = frame.iloc[0]
    assert (
        row.query == "runway" and row.max_score == pytest.approx(0.9) and row.mean_score == pytest.approx(0.9)
    )


def test_areas_and_min_area_are_true_square_metres_on_degree_grids() -> None:
    heat = np.zeros(WGS84.shape)
    heat[10:40, 10:70] = 0.8  # 60 × 30 pixels ≈ 3.34 km × 3.34 km
    heat[80:82, 100:102] = 0.7  # 4 pixels ≈ 0.025 km²
    frame = heatmap_to_polygons(heat, WGS84, threshold=0.5)
    assert frame.crs.to_epsg() == 4326 and len(frame) == 2
    equal_area = frame.to_crs("+proj=laea +lat_0=60 +lon_0=10 +datum=WGS84").area  # pyproj via geopandas
    np.testing.assert_allclose(frame.area_m2, equal_area, rtol=1e-3)
    kept = heatmap_to_polygons(heat, WGS84, threshold=0.5, min_area_m2=100_000)
    assert len(kept) == 1 and kept.max_score.iloc[0] == pytest.approx(0.8)


def test_top_percent_simplify_and_requested_crs() -> None:
    heat = np.random.default_rng(0).random(UTM.shape) * 0.5
    heat[20:30, 20:40] = 1.0  # 200 px = 1.67 % of the scene
    frame = heatmap_to_polygons(heat, UTM, top_percent=1.0, simplify=1.0, crs="EPSG:4326")
    assert frame.crs.to_epsg() == 4326
    assert len(frame) == 1 and frame.area_m2.iloc[0] == pytest.approx(200 * 100.0)
    with pytest.raises(InputError, match="exactly one"):
        heatmap_to_polygons(heat, UTM, threshold=0.5, top_percent=5)


def test_chip_polygons_dissolve_and_geopackage_round_trip(tmp_path: Path) -> None:
    windows = [Window(0, 0, 60, 50), Window(60, 0, 60, 50), Window(0, 50, 60, 50), Window(100, 90, 40, 40)]
    labels = ["water", "water", "town", "forest"]
    topk = [[(label, 0.8), ("other", 0.1), ("more", 0.05)] for label in labels]
    chips = chip_labels_to_polygons(windows, labels, [0.8, 0.6, 0.9, 0.7], UTM, topk=topk)
    assert list(chips.columns) == ["label", "confidence", "top3", "area_m2", "geometry"]
    assert chips.geometry.iloc[0].equals(box(500_000, 5_599_500, 500_600, 5_600_000))
    assert chips.area_m2.iloc[3] == pytest.approx(20 * 10 * 100.0)  # clipped to the grid
    assert chips.top3.iloc[2] == "town: 0.800; other: 0.100; more: 0.050"
    regions = dissolve_labels(chips)
    water = regions[regions.label == "water"]
    assert len(water) == 1 and water.area_m2.iloc[0] == pytest.approx(120 * 50 * 100.0)
    assert water.mean_confidence.iloc[0] == pytest.approx(0.7)
    path = write_geopackage(
        {"chips": chips, "regions": dissolve_labels(chips, crs="EPSG:3857")}, tmp_path / "l.gpkg"
    )
    read_chips = gpd.read_file(path, layer="chips")
    read_regions = gpd.read_file(path, layer="regions")
    assert read_chips.crs.to_epsg() == 32632 and read_regions.crs.to_epsg() == 3857
    assert sorted(read_regions.label) == ["forest", "town", "water"]
