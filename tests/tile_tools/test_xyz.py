"""XYZ tiles against mercantile's numbers and GDAL's reprojection; local tile folders as scenes."""

from __future__ import annotations

import mercantile
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.transform import from_bounds, from_origin
from rasterio.warp import reproject, transform_bounds

from tile_tools.errors import InputError
from tile_tools.grid import plan_chips
from tile_tools.reader import SceneReader
from tile_tools.xyz import tile_window, tile_windows, tiles_covering


@pytest.fixture
def scene_4326(make_scene, rng):
    data = rng.integers(1, 255, (3, 120, 160), dtype=np.uint8)
    return make_scene(data, crs="EPSG:4326", transform=from_origin(9.0, 48.0, 0.0001, 0.0001)), data


def test_tiles_cover_the_scene_and_bounds_equal_mercantile(scene_4326):
    path, _ = scene_4326
    zoom = 16
    with SceneReader(path, xyz_zoom=zoom) as reader, rasterio.open(path) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        expected = set(mercantile.tiles(west, south, east, north, zooms=zoom))
        windows = tile_windows(reader)
        chips = [reader.read_chip(w) for w in windows]
        assert {c.tile for c in chips} == expected
        for chip in chips:
            assert chip.crs == rasterio.crs.CRS.from_epsg(3857)
            assert chip.bounds == pytest.approx(tuple(mercantile.xy_bounds(chip.tile)), abs=1e-6)
            assert chip.image.shape == (256, 256, 3)
            assert tile_window(reader, chip.tile) == chip.window


def test_tile_pixels_equal_a_gdal_reprojection_onto_the_tile(scene_4326):
    path, data = scene_4326
    with SceneReader(path, xyz_zoom=16) as reader, rasterio.open(path) as src:
        chips = [reader.read_chip(w) for w in tile_windows(reader)]
        chip = max(chips, key=lambda c: c.valid_fraction)
        assert chip.valid_fraction > 0.5
        destination = np.zeros((3, 256, 256), dtype=np.uint8)
        reproject(
            data,
            destination,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=from_bounds(*mercantile.xy_bounds(chip.tile), 256, 256),
            dst_crs="EPSG:3857",
            resampling=Resampling.bilinear,
        )
        inside = chip.mask
        diff = np.abs(chip.image.transpose(2, 0, 1)[:, inside].astype(int) - destination[:, inside])
        assert diff.max() <= 1
        # tiles overhanging the scene footprint have invalid pixels there
        assert any(not c.mask.all() for c in chips)


def test_plan_chips_with_xyz_size_and_min_valid(scene_4326):
    path, _ = scene_4326
    with plan_chips(path, xyz_zoom=16, chip_size="128", min_valid=0.0) as plan:
        assert all(w.width == 128 for w in plan.windows)
        assert all(plan.reader.read_chip(w).tile is not None for w in plan.windows[:3])
    with plan_chips(path, xyz_zoom=16, min_valid=0.99) as plan:
        assert all(plan.reader.valid_fraction(w) >= 0.99 for w in plan.windows)


def test_zoom_out_of_range_and_no_crs(scene_4326, make_scene):
    path, data = scene_4326
    with pytest.raises(InputError, match="zoom 25 is out of range"):
        plan_chips(path, xyz_zoom=25)
    with pytest.raises(InputError, match="out of range"):
        SceneReader(path, xyz_zoom=-1)
    with pytest.raises(InputError, match="no CRS"):
        SceneReader(make_scene(data, crs=None), xyz_zoom=10)


def test_tiles_covering_lists_mercantile_tiles():
    bounds = (8.99, 47.98, 9.03, 48.01)
    assert set(tiles_covering(bounds, 14)) == set(mercantile.tiles(*bounds, zooms=14))


def _write_tile(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = array.shape
    with rasterio.open(
        path, "w", driver="PNG", width=width, height=height, count=count, dtype="uint8"
    ) as dst:
        dst.write(array)


def test_local_slippy_folder_reads_as_a_scene(tmp_path, rng):
    root = tmp_path / "tiles"
    zoom, tiles = 12, {(2140, 1420): None, (2141, 1420): None, (2140, 1421): None}  # (2141, 1421) missing
    for x, y in tiles:
        array = rng.integers(1, 255, (4, 256, 256), dtype=np.uint8)
        array[3] = 255
        array[3, :, :32] = 0  # transparent strip
        tiles[(x, y)] = array
        _write_tile(root / str(zoom) / str(x) / f"{y}.png", array)
    _write_tile(root / "11" / "1070" / "710.png", rng.integers(1, 255, (3, 256, 256), dtype=np.uint8))
    with SceneReader(root) as reader:  # highest zoom is used
        grid = reader.grid
        assert (grid.width, grid.height) == (512, 512)
        assert grid.crs == rasterio.crs.CRS.from_epsg(3857)
        left, _, _, top = mercantile.xy_bounds(mercantile.Tile(2140, 1420, zoom))
        assert (grid.transform.c, grid.transform.f) == pytest.approx((left, top))
        chip = reader.read_chip(rasterio.windows.Window(256, 0, 256, 256))  # tile (2141, 1420)
        np.testing.assert_array_equal(chip.image[:, 32:].transpose(2, 0, 1), tiles[(2141, 1420)][:3, :, 32:])
        assert not chip.mask[:, :32].any() and chip.mask[:, 32:].all()
        assert chip.bounds == pytest.approx(tuple(mercantile.xy_bounds(mercantile.Tile(2141, 1420, zoom))))
        missing = reader.read_chip(rasterio.windows.Window(256, 256, 256, 256))
        assert not missing.mask.any()
    with pytest.raises(InputError, match="not a slippy-map tile folder"):
        SceneReader(tmp_path / "tiles" / "12" / "2140")


# --- across the antimeridian (issue 10 item 9: the part east of 180° was dropped) ----------------------
def _reprojected_onto(tile, data, crs, transform, resampling=Resampling.bilinear):
    """GDAL's own reprojection of ``data`` (and of its valid mask) onto the EPSG:3857 ``tile``."""
    image = np.zeros((data.shape[0], 256, 256), dtype=np.uint8)
    valid = np.zeros((256, 256), dtype=np.uint8)
    common = dict(
        src_transform=transform,
        src_crs=crs,
        dst_transform=from_bounds(*mercantile.xy_bounds(tile), 256, 256),
        dst_crs="EPSG:3857",
    )
    reproject(data, image, resampling=resampling, **common)
    reproject(np.ones(data.shape[1:], np.uint8), valid, resampling=Resampling.nearest, **common)
    return image, valid.astype(bool)


def test_a_utm_scene_across_the_antimeridian_gets_tiles_on_both_sides(make_scene):
    # a Fiji-like UTM 60 S scene, 800 m west and 800 m east of 180°
    x180, y = Transformer.from_crs(4326, 32760, always_xy=True).transform(180.0, -16.0)
    rows, cols = np.mgrid[0:120, 0:160]
    data = np.stack([10 + cols * 1.5, 10 + rows * 2.0, 250 - cols - rows / 2]).astype(
        np.uint8
    )  # smooth ramps
    transform = from_origin(round(x180) - 800.0, round(y), 10.0, 10.0)
    path = make_scene(data, crs="EPSG:32760", transform=transform)
    zoom = 14
    with SceneReader(path, xyz_zoom=zoom) as reader, rasterio.open(path) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        assert west > east  # GDAL's own spelling of a box across the antimeridian
        expected = set(mercantile.tiles(west, south, east, north, zooms=zoom))
        chips = [reader.read_chip(w) for w in tile_windows(reader)]
        assert {c.tile for c in chips} == expected
        assert {c.tile.x for c in chips} == {0, 2**zoom - 1}
        for chip in chips:
            assert chip.crs == rasterio.crs.CRS.from_epsg(3857)
            assert chip.bounds == pytest.approx(tuple(mercantile.xy_bounds(chip.tile)), abs=1e-6)
            assert tile_window(reader, chip.tile) == chip.window
            image, valid = _reprojected_onto(chip.tile, data, src.crs, src.transform)
            assert chip.valid_fraction > 0.03
            assert np.mean(chip.mask != valid) < 0.01  # masks agree up to GDAL's edge pixels
            both = chip.mask & valid
            diff = np.abs(chip.image.transpose(2, 0, 1)[:, both].astype(int) - image[:, both])
            assert diff.max() <= 1  # on ramps of 1.5-2 levels per pixel: placed within a pixel


@pytest.mark.parametrize("west", [179.85, -180.15])  # the same place spelled east or west of ±180°
def test_a_degree_scene_spelled_past_180_keeps_both_halves(make_scene, rng, west):
    zoom, res = 9, 0.002
    data = rng.integers(1, 255, (3, 50, 100), dtype=np.uint8)
    path = make_scene(data, crs="EPSG:4326", transform=from_origin(west, -16.0, res, res))
    # the truth: each half written as a scene of its own in ordinary −180…180° longitudes
    halves = {
        2**zoom - 1: (data[:, :, :75], from_origin(179.85, -16.0, res, res)),
        0: (data[:, :, 75:], from_origin(-180.0, -16.0, res, res)),
    }
    with SceneReader(path, xyz_zoom=zoom, resampling="nearest") as reader:
        chips = {c.tile.x: c for c in (reader.read_chip(w) for w in tile_windows(reader))}
        assert set(chips) == {0, 2**zoom - 1}
        for x, (half, transform) in halves.items():
            chip = chips[x]
            image, valid = _reprojected_onto(chip.tile, half, "EPSG:4326", transform, Resampling.nearest)
            assert chip.crs == rasterio.crs.CRS.from_epsg(3857)
            assert chip.bounds == pytest.approx(tuple(mercantile.xy_bounds(chip.tile)), abs=1e-6)
            assert abs(int(chip.mask.sum()) - int(valid.sum())) <= 256  # at most one column at the seam
            both = chip.mask & valid
            assert both.sum() > 0.9 * valid.sum()
            np.testing.assert_array_equal(chip.image.transpose(2, 0, 1)[:, both], image[:, both])
