"""Mosaic VRTs: scenes on the run's lattice keep their exact pixels, the others are GDAL's own warp."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import from_bounds

from geo_dfm.batch.mosaic import Lattice, mosaic_kinds, write_mosaic

UTM = CRS.from_epsg(32633)
NODATA = -9999.0


def write_raster(path, data, transform, crs, nodata=NODATA, colormap=None, description="score"):
    count = 1 if data.ndim == 2 else data.shape[0]
    profile = dict(
        driver="GTiff", width=data.shape[-1], height=data.shape[-2], count=count, dtype=data.dtype.name,
        crs=crs, transform=transform, nodata=nodata, tiled=True, blockxsize=16, blockysize=16,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data if data.ndim == 3 else data[None])
        dst.set_band_description(1, description)
        if colormap:
            dst.write_colormap(1, colormap)
    return path


@pytest.fixture
def scenes(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "out" / "scenes"
    folder.mkdir(parents=True)
    made = {}
    under = rng.random((8, 8), dtype=np.float32)  # first, so below a: shows through a's hole
    made["under"] = write_raster(folder / "under.tif", under, Affine(2, 0, 500_008, 0, -2, 5_319_992), UTM)
    a = rng.random((30, 40), dtype=np.float32)
    a[5:10, 5:10] = NODATA  # a hole: whatever lies below shows through
    made["a"] = write_raster(folder / "a.tif", a, Affine(2, 0, 500_000, 0, -2, 5_320_000), UTM)
    b = rng.random((20, 30), dtype=np.float32)  # on the lattice, 100 px east, overlapping nothing
    made["b"] = write_raster(folder / "b.tif", b, Affine(2, 0, 500_200, 0, -2, 5_319_980), UTM)
    c = rng.random((16, 16), dtype=np.float32)  # same CRS, half a pixel off the lattice
    made["c"] = write_raster(folder / "c.tif", c, Affine(2, 0, 500_301, 0, -2, 5_319_999), UTM)
    lon, lat = rasterio.warp.transform(UTM, "EPSG:4326", [500_120], [5_319_950])
    d = rng.random((24, 24), dtype=np.float32)  # geographic
    made["d"] = write_raster(
        folder / "d.tif", d, Affine(2e-5, 0, lon[0], 0, -2e-5, lat[0]), CRS.from_epsg(4326)
    )
    return made


def read_at(mosaic, src):
    """The mosaic's pixels over ``src``'s bounds (``src`` on the lattice)."""
    window = from_bounds(*src.bounds, transform=mosaic.transform).round_offsets().round_lengths()
    return mosaic.read(1, window=window)


def test_scenes_on_the_lattice_keep_their_pixels_and_others_are_warped_by_gdal(scenes, tmp_path):
    path = tmp_path / "out" / "mosaics" / "heat.vrt"
    write_mosaic(path, list(scenes.items()), UTM, path.parent / "warped")
    with rasterio.open(path) as mosaic, rasterio.open(scenes["a"]) as a, rasterio.open(scenes["b"]) as b:
        assert mosaic.crs == UTM and mosaic.res == (2.0, 2.0) and mosaic.nodata == NODATA
        assert mosaic.transform.c == 500_000 and mosaic.transform.f == 5_320_000  # the lattice of "under"
        assert mosaic.descriptions == ("score",)
        np.testing.assert_array_equal(read_at(mosaic, b), b.read(1))
        over_a = read_at(mosaic, a)
        outside_hole = np.ones(a.shape, bool)
        outside_hole[5:10, 5:10] = False
        np.testing.assert_array_equal(over_a[outside_hole], a.read(1)[outside_hole])
        assert len(list((path.parent / "warped").iterdir())) == 2  # c and d, not a and b
        for scene in ("c", "d"):
            with rasterio.open(scenes[scene]) as src:
                bounds = transform_bounds(src.crs, UTM, *src.bounds, densify_pts=21)
                window = from_bounds(*bounds, transform=mosaic.transform)
                window = window.round_offsets(op="floor").round_lengths(op="ceil")
                expected = np.full((int(window.height), int(window.width)), NODATA, np.float32)
                reproject(
                    rasterio.band(src, 1), expected, src_nodata=NODATA, dst_nodata=NODATA,
                    dst_transform=mosaic.window_transform(window), dst_crs=UTM, resampling=Resampling.nearest,
                )  # fmt: skip
                got = mosaic.read(1, window=window)
                valid = expected != NODATA
                assert valid.sum() > 0.5 * valid.size
                np.testing.assert_array_equal(got[valid], expected[valid])
        with rasterio.open(scenes["under"]) as under:  # a's nodata hole hides nothing below it
            np.testing.assert_array_equal(over_a[5:10, 5:10], under.read(1)[1:6, 1:6])


def test_the_mosaic_moves_with_its_folder_and_keeps_class_colours(scenes, tmp_path):
    classes = np.array([[0, 1], [1, 255]], dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    colours = {0: (31, 119, 180, 255), 1: (255, 127, 14, 255)}
    folder = tmp_path / "out" / "scenes"
    a = write_raster(folder / "ka.tif", classes, Affine(2, 0, 0, 0, -2, 32), UTM, 255, colours, "class")
    b = write_raster(folder / "kb.tif", classes, Affine(2, 0, 1000.5, 0, -2, 32), UTM, 255, colours, "class")
    path = tmp_path / "out" / "mosaics" / "classes.vrt"
    write_mosaic(path, [("ka", a), ("kb", b)], UTM, path.parent / "warped", category_names=["water", "town"])
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "out", moved)
    with (
        rasterio.open(moved / "mosaics" / "classes.vrt") as mosaic,
        rasterio.open(moved / "scenes" / "ka.tif") as src,
    ):
        assert mosaic.colormap(1)[1] == (255, 127, 14, 255) and mosaic.nodata == 255
        np.testing.assert_array_equal(read_at(mosaic, src), classes)
        assert set(np.unique(mosaic.read(1))) == {0, 1, 255}
    assert "<Category>town</Category>" in (moved / "mosaics" / "classes.vrt").read_text(encoding="utf-8")


def test_lattice_arithmetic():
    lattice = Lattice(UTM, 2.0, 2.0, 100.0, 50.0)
    assert lattice.cover((101.0, 30.0, 105.0, 49.0)) == (0, 0, 3, 10)
    assert lattice.transform(2, 3) == Affine(2, 0, 104, 0, -2, 44)


def test_mosaic_names_follow_the_per_scene_files():
    kinds = mosaic_kinds(("classify", "localize"), ["airport runway", "Airport runway"])
    assert [(k.name, k.file) for k in kinds] == [
        ("classes", "classes.tif"),
        ("probabilities", "probabilities.tif"),
        ("heatmap_airport_runway", "airport_runway.tif"),
        ("heatmap_airport_runway_2", "airport_runway_2.tif"),
    ]


def assert_covers_by_whole_cells(grid, bounds, lattice):
    """``grid``'s edges are edges of ``lattice``'s cells (a north-up transform), and it holds ``bounds``
    with less than a cell to spare on each side (up to the lattice's 1e-6 cell tolerance)."""
    res, eps = lattice.a, 1e-6 * lattice.a
    for edge, origin in zip(grid, (lattice.c, lattice.f, lattice.c, lattice.f), strict=True):
        assert (edge - origin) / res == pytest.approx(round((edge - origin) / res), abs=1e-6)
    left, bottom, right, top = bounds
    assert grid.left - eps <= left < grid.left + res and grid.right - res < right <= grid.right + eps
    assert grid.bottom - eps <= bottom < grid.bottom + res and grid.top - res < top <= grid.top + eps


def test_the_mosaic_grid_is_the_union_of_its_scenes_on_the_lattice(scenes, tmp_path):
    path = tmp_path / "out" / "mosaics" / "heat.vrt"
    write_mosaic(path, list(scenes.items()), UTM, path.parent / "warped")
    with rasterio.open(path) as mosaic:
        assert mosaic.driver == "VRT" and mosaic.count == 1 and mosaic.dtypes == ("float32",)
        files = {Path(f).resolve() for f in mosaic.files}
        # one layer over every scene: on the lattice directly, off it through its warped VRT
        assert {Path(scenes[s]).resolve() for s in ("under", "a", "b")} <= files
        assert {(path.parent / "warped" / f"{s}_heat.vrt").resolve() for s in "cd"} <= files
        expected = []
        for scene in ("under", "a", "b"):
            with rasterio.open(scenes[scene]) as src:
                expected.append(src.bounds)
        for scene in "cd":
            with rasterio.open(scenes[scene]) as src:
                bounds = transform_bounds(src.crs, UTM, *src.bounds, densify_pts=21)
            with rasterio.open(path.parent / "warped" / f"{scene}_heat.vrt") as warped:
                assert warped.crs == UTM and warped.res == mosaic.res
                # the warped grid: the lattice cells covering the scene, no more, no less
                assert_covers_by_whole_cells(warped.bounds, bounds, mosaic.transform)
                expected.append(warped.bounds)
        union = (
            min(b.left for b in expected),
            min(b.bottom for b in expected),
            max(b.right for b in expected),
            max(b.top for b in expected),
        )
        assert tuple(mosaic.bounds) == pytest.approx(union, abs=1e-6)
        assert (mosaic.width, mosaic.height) == (
            round((union[2] - union[0]) / 2),
            round((union[3] - union[1]) / 2),
        )


def test_a_run_crs_no_scene_is_in_takes_rasterios_default_grid_of_the_first_scene(scenes, tmp_path):
    from rasterio.warp import calculate_default_transform

    run_crs = CRS.from_epsg(3035)  # LAEA Europe: every scene is warped
    path = tmp_path / "out" / "mosaics" / "heat.vrt"
    sources = [(s, scenes[s]) for s in ("a", "b", "d")]
    write_mosaic(path, sources, run_crs, path.parent / "warped")
    with rasterio.open(scenes["a"]) as a:
        reference, _, _ = calculate_default_transform(a.crs, run_crs, a.width, a.height, *a.bounds)
    with rasterio.open(path) as mosaic:
        assert mosaic.crs == run_crs and mosaic.transform.b == mosaic.transform.d == 0
        assert mosaic.res == pytest.approx((reference.a, -reference.e), rel=1e-12)
        cols = (mosaic.transform.c - reference.c) / reference.a
        rows = (reference.f - mosaic.transform.f) / -reference.e
        assert cols == pytest.approx(round(cols), abs=1e-6) and rows == pytest.approx(round(rows), abs=1e-6)
        for scene, source in sources:
            with rasterio.open(source) as src:
                bounds = transform_bounds(src.crs, run_crs, *src.bounds, densify_pts=21)
                window = from_bounds(*bounds, transform=mosaic.transform)
                window = window.round_offsets(op="floor").round_lengths(op="ceil")
                expected = np.full((int(window.height), int(window.width)), NODATA, np.float32)
                reproject(
                    rasterio.band(src, 1), expected, src_nodata=NODATA, dst_nodata=NODATA,
                    dst_transform=mosaic.window_transform(window), dst_crs=run_crs,
                    resampling=Resampling.nearest,
                )  # fmt: skip
            valid = expected != NODATA
            assert valid.mean() > 0.5, scene
            np.testing.assert_array_equal(mosaic.read(1, window=window)[valid], expected[valid])
    assert sorted(p.name for p in (path.parent / "warped").iterdir()) == [
        "a_heat.vrt", "b_heat.vrt", "d_heat.vrt",
    ]  # fmt: skip


def test_a_mosaic_refuses_sources_that_are_not_one_layer(scenes, tmp_path):
    path = tmp_path / "out" / "mosaics" / "heat.vrt"
    two_bands = write_raster(
        tmp_path / "two.tif", np.zeros((2, 8, 8), np.float32), Affine(2, 0, 500_000, 0, -2, 5_320_000), UTM
    )
    with pytest.raises(ValueError, match=r"2 × float32 bands, the mosaic has 1 × float32"):
        write_mosaic(path, [("a", scenes["a"]), ("two", two_bands)], UTM, path.parent / "warped")
    with pytest.raises(ValueError, match="at least one source"):
        write_mosaic(path, [], UTM, path.parent / "warped")
    assert not path.exists()
