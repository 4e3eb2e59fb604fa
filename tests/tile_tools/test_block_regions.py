"""Block-wise polygons equal the whole-array polygonization (rasterio/GDAL on the whole map), seams merged."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import shape

from tile_tools.block_regions import BlockRegions
from tile_tools.blocks import array_blocks
from tile_tools.class_blocks import LabelBlock
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.vectorize import ClassRegions, HeatRegions, class_map_to_polygons, heatmap_to_polygons

UTM = PixelGrid(90, 70, Affine(10.0, 0, 500_000.0, 0, -10.0, 5_600_000.0), CRS.from_epsg(32632))
WGS84 = PixelGrid(90, 70, Affine(0.001, 0, 10.0, 0, -0.001, 60.05), CRS.from_epsg(4326))


def whole_array_regions(mask: np.ndarray, transform: Affine) -> list[shapely.Geometry]:
    """The oracle: label the whole mask, polygonize it with GDAL (rasterio), one polygon per label."""
    labels, _ = ndimage.label(mask)
    parts: dict[int, list] = {}
    for geojson, value in rasterio.features.shapes(
        labels.astype(np.int32), mask=labels > 0, transform=transform, connectivity=4
    ):
        parts.setdefault(int(value), []).append(shape(geojson))
    return [shapely.union_all(parts[k]) for k in sorted(parts)]


def ring_scene() -> np.ndarray:
    """A heatmap with a ring around a hole, a snake and blobs that cross many 16-pixel block seams."""
    rows, cols = np.indices(UTM.shape)
    heat = np.full(UTM.shape, 0.1)
    radius = np.hypot(rows - 32, cols - 32)
    heat[(radius >= 9) & (radius < 20)] = 0.9  # ring: hole centred on the seam crossing (32, 32)
    heat[5:8, 40:88] = 0.8  # a bar across three vertical seams
    heat[8:60, 85:87] = 0.7  # joined to the bar: an L through four horizontal seams
    heat[50:66, 10:12] = 0.6  # a vertical bar beside the ring, not touching it
    heat[64, 10:60] = 0.65  # hooking across seams at the bottom block row
    heat[47, 47] = 0.95  # single pixels diagonally touching (not 4-connected)
    heat[48, 48] = 0.95
    heat[30:33, 29:31] = np.nan  # invalid pixels inside the ring's hole
    return heat


def assert_same_polygons(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    remaining = list(expected)
    for geometry in got:
        assert geometry.geom_type == "Polygon"  # one polygon per region: nothing left split at a seam
        match = [e for e in remaining if shapely.equals(geometry, e)]
        assert match, f"no whole-array polygon equals {geometry.wkt[:120]}"
        remaining.remove(match[0])


@pytest.mark.parametrize("block_size", [16, 23, 200])
def test_heat_regions_blockwise_equal_the_whole_array_polygons(block_size: int) -> None:
    heat = ring_scene()
    regions = HeatRegions(UTM, threshold=0.5, query="q")
    for window, data in array_blocks(heat, block_size):
        regions.add(window, data[0])
    frame = regions.frame()
    expected = whole_array_regions(np.nan_to_num(heat) >= 0.5, UTM.transform)
    assert_same_polygons(list(frame.geometry), expected)
    ring = frame[np.isclose(frame.max_score, 0.9)].geometry.iloc[0]
    assert len(ring.interiors) == 1  # the hole is kept across the seams
    # attributes: scores of the region's pixels, true area
    labels, _ = ndimage.label(np.nan_to_num(heat) >= 0.5)
    for row in frame.itertuples():
        pixel = shapely.Point(*(~UTM.transform @ row.geometry.representative_point().coords[0]))
        label = labels[int(pixel.y), int(pixel.x)]
        assert row.max_score == pytest.approx(heat[labels == label].max())
        assert row.mean_score == pytest.approx(heat[labels == label].mean(), rel=1e-12)
        assert row.area_m2 == pytest.approx((labels == label).sum() * 100.0)
    assert list(frame.max_score) == sorted(frame.max_score, reverse=True)


def test_polygons_in_pixel_space_are_exactly_the_gdal_ones() -> None:
    mask = np.random.default_rng(4).random((61, 47)) > 0.55  # many small regions, holes, seams
    engine = BlockRegions(*mask.shape)
    records = []
    for window, data in array_blocks(mask.astype(np.float64), 10):
        records += engine.add(window, np.where(data[0] > 0, 0, -1), data[0])
    records += engine.finish()
    expected = whole_array_regions(mask, Affine.identity())
    assert_same_polygons([r.geometry for r in sorted(records, key=lambda r: r.first)], expected)
    assert sum(r.count for r in records) == mask.sum()


def test_whole_array_front_end_matches_blocks_on_a_degree_grid_with_options() -> None:
    heat = ring_scene()
    whole = heatmap_to_polygons(heat, WGS84, threshold=0.5, min_area_m2=50_000, simplify=1.0, block_size=4096)
    blocks = heatmap_to_polygons(heat, WGS84, threshold=0.5, min_area_m2=50_000, simplify=1.0, block_size=16)
    assert len(whole) == len(blocks) > 0
    for a, b in zip(whole.geometry, blocks.geometry, strict=True):
        assert shapely.equals(a, b)
    np.testing.assert_allclose(whole.area_m2, blocks.area_m2, rtol=1e-12)
    assert (whole.area_m2 >= 50_000).all()
    # geodesic areas: compare with an equal-area projection through geopandas/pyproj
    unsimplified = heatmap_to_polygons(heat, WGS84, threshold=0.5, min_area_m2=50_000, block_size=16)
    laea = unsimplified.to_crs("+proj=laea +lat_0=60 +lon_0=10 +datum=WGS84").area
    np.testing.assert_allclose(unsimplified.area_m2, laea, rtol=1e-3)


def test_top_percent_uses_the_exact_scene_quantile() -> None:
    heat = np.random.default_rng(2).random(UTM.shape)
    heat[10:20, 10:30] = 2.0
    frame = heatmap_to_polygons(heat, UTM, top_percent=3.2, block_size=16)
    level = np.percentile(heat, 100 - 3.2)
    expected = whole_array_regions(heat >= level, UTM.transform)
    assert_same_polygons(list(frame.geometry), expected)


def test_class_regions_dissolve_equal_classes_across_seams() -> None:
    rows, cols = np.indices(UTM.shape)
    classes = np.full(UTM.shape, 255, np.uint8)
    classes[(rows // 20 + cols // 25) % 3 == 0] = 0
    classes[(rows // 20 + cols // 25) % 3 == 1] = 1
    classes[np.hypot(rows - 35, cols - 45) < 12] = 2
    classes[np.hypot(rows - 35, cols - 45) < 4] = 255  # a hole in class 2
    confidence = (0.5 + 0.004 * cols).astype(np.float32)
    frame = class_map_to_polygons(classes, confidence, UTM, ["water", "forest", "town"], block_size=16)
    for k, label in enumerate(["water", "forest", "town"]):
        got = list(frame[frame.label == label].geometry)
        assert_same_polygons(got, whole_array_regions(classes == k, UTM.transform))
    town = frame[frame.label == "town"]
    assert len(town) == 1 and len(town.geometry.iloc[0].interiors) == 1
    assert town.mean_confidence.iloc[0] == pytest.approx(confidence[classes == 2].mean(), rel=1e-6)
    assert town.area_m2.iloc[0] == pytest.approx((classes == 2).sum() * 100.0)
    assert list(frame.columns) == ["label", "mean_confidence", "area_m2", "geometry"]
    assert frame.crs.equals(UTM.crs.to_wkt())


def test_blocks_out_of_order_or_missing_are_refused() -> None:
    regions = ClassRegions(UTM, ["a"])
    block = LabelBlock(Window(16, 0, 16, 16), np.zeros((16, 16), np.uint8), np.ones((16, 16), np.float32))
    with pytest.raises(ValueError, match="row-major"):
        regions.add(block)
    heat = HeatRegions(UTM, 0.5)
    heat.add(Window(0, 0, 90, 16), np.ones((16, 90)))
    with pytest.raises(ValueError, match="cover"):
        heat.frame()
    with pytest.raises(InputError, match="CRS"):
        HeatRegions(PixelGrid(4, 4, Affine.identity(), None), 0.5, min_area_m2=10)
