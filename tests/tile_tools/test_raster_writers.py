"""Raster writers: georeferencing, nodata, COG layout, colour tables, atomicity (checked with rasterio/GDAL)."""

from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from tile_tools.accumulate import Block, WeightedAccumulator
from tile_tools.block_stats import ChannelStats
from tile_tools.class_blocks import label_block
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.raster_writers import (
    ClassRasterWriter,
    CogWriter,
    write_class_raster,
    write_cog,
    write_overlay_png,
    write_preview_png,
)

UTM = PixelGrid(300, 200, Affine(10.0, 0, 500_000.0, 0, -10.0, 5_600_000.0), CRS.from_epsg(32632))
WGS84 = PixelGrid(270, 180, Affine(0.001, 0, 10.0, 0, -0.001, 60.0), CRS.from_epsg(4326))


def assert_georeferenced_like(path: Path, grid: PixelGrid) -> None:
    with rasterio.open(path) as src:
        assert src.crs == grid.crs
        assert src.transform.almost_equals(grid.transform)
        assert (src.width, src.height) == (grid.width, grid.height)


@pytest.mark.parametrize("grid", [UTM, WGS84], ids=["utm", "wgs84"])
def test_cog_carries_crs_transform_nodata_and_descriptions(tmp_path: Path, grid: PixelGrid) -> None:
    rng = np.random.default_rng(0)
    data = rng.random((2, grid.height, grid.width)).astype(np.float32)
    data[0, :3, :5] = np.nan
    valid = np.ones(grid.shape, bool)
    valid[-1] = False
    path = write_cog(
        tmp_path / "heat.tif", data, grid, band_descriptions=["score", "raw"], valid=valid, block_size=128
    )
    assert_georeferenced_like(path, grid)
    with rasterio.open(path) as src:
        assert src.nodata == -9999.0 and src.dtypes == ("float32", "float32")
        assert src.descriptions == ("score", "raw")
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.compression.name.lower() == "deflate" and src.profile["tiled"]
        assert src.overviews(1) == [2, 4]
        stored = src.read()
        masks = src.read_masks(1)
    expected = np.where(np.isfinite(data) & valid, data, -9999.0)
    np.testing.assert_array_equal(stored, expected)
    assert masks[0, 0] == 0 and masks[-1, 0] == 0 and masks[10, 10] == 255
    # first overview: nodata-aware mean of each 2 × 2 group
    with rasterio.open(path, overview_level=0) as ovr:
        level = ovr.read(1)
    band = np.where(stored[0] == -9999.0, np.nan, stored[0].astype(np.float64))
    h, w = level.shape
    groups = np.pad(band, ((0, 2 * h - band.shape[0]), (0, 2 * w - band.shape[1])), constant_values=np.nan)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        mean = np.nanmean(groups.reshape(h, 2, w, 2), axis=(1, 3))
    np.testing.assert_allclose(level, np.where(np.isnan(mean), -9999.0, mean), rtol=1e-6)


def test_cog_from_accumulator_blocks_equals_the_array(tmp_path: Path) -> None:
    acc = WeightedAccumulator(UTM, 1, weight="hann", decimation=3, block_size=16)
    for row in range(0, 190, 20):
        for col in range(0, 290, 20):
            acc.add(Window(col, row, 30, 30), [row + col])
    path = write_cog(tmp_path / "heat.tif", acc.iter_blocks(), acc.output_grid, block_size=128)
    assert_georeferenced_like(path, acc.output_grid)
    with rasterio.open(path) as src:
        stored = src.read(1, masked=True)
    mean = acc.mean()[0]
    np.testing.assert_array_equal(stored.mask, np.isnan(mean))
    np.testing.assert_allclose(stored.filled(np.nan), mean, equal_nan=True)
    acc.close()


def test_class_raster_has_colour_table_names_and_nodata(tmp_path: Path) -> None:
    classes = np.random.default_rng(1).integers(0, 3, size=UTM.shape).astype(np.uint8)
    classes[:4, :4] = 255
    colours = [(0, 0, 255), (0, 128, 0), (200, 0, 0, 255)]
    path = write_class_raster(tmp_path / "classes.tif", classes, UTM, ["water", "forest", "town"], colours)
    assert_georeferenced_like(path, UTM)
    with rasterio.open(path) as src:
        assert src.dtypes == ("uint8",) and src.nodata == 255
        np.testing.assert_array_equal(src.read(1), classes)
        table = src.colormap(1)
        assert table[0] == (0, 0, 255, 255) and table[1] == (0, 128, 0, 255) and table[2] == (200, 0, 0, 255)
    assert (tmp_path / "classes.tif.aux.xml").exists()
    if shutil.which("gdalinfo") is None:
        pytest.skip("gdalinfo not installed: category names not checked with GDAL")
    info = json.loads(
        subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True, check=True).stdout
    )
    assert info["bands"][0]["categories"] == ["water", "forest", "town"]
    assert info["bands"][0]["colorInterpretation"] == "Palette"


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_preview_png_is_rgba_transparent_outside_valid(tmp_path: Path) -> None:
    heat = np.linspace(0, 1, 60 * 90).reshape(60, 90)
    heat[:5] = np.nan
    path = write_preview_png(tmp_path / "preview.png", heat, colormap="viridis")
    with rasterio.open(path) as src:
        rgba = src.read()
    assert rgba.shape == (4, 60, 90)
    assert np.all(rgba[3, :5] == 0) and np.all(rgba[3, 5:] == 255)
    assert rgba[0, -1, -1] > 200 and rgba[2, 5, 0] > rgba[1, 5, 0]  # viridis: yellow at 1, purple at 0


def test_overlay_is_georeferenced_and_blended(tmp_path: Path) -> None:
    image = np.full((180, 270, 3), 100, np.uint8)
    heat = np.zeros((180, 270))
    heat[:, 135:] = 1.0
    path = write_overlay_png(tmp_path / "overlay.png", image, heat, WGS84)
    assert_georeferenced_like(path, WGS84)
    with rasterio.open(path) as src:
        rgba = src.read()
    # jet(0) = dark blue (0, 0, 128), jet(1) = dark red (128, 0, 0): 0.7·100 + 0.3·colour
    assert tuple(rgba[:3, 0, 0]) == (70, 70, 108)
    assert tuple(rgba[:3, 0, -1]) == (108, 70, 70)


def test_failed_writes_leave_nothing_behind(tmp_path: Path) -> None:
    def blocks_then_failure():
        yield Block(Window(0, 0, 32, 32), np.zeros((1, 32, 32), np.float32))
        raise RuntimeError("model crashed mid-scene")

    with pytest.raises(RuntimeError, match="mid-scene"):
        write_cog(tmp_path / "heat.tif", blocks_then_failure(), UTM, block_size=128)
    assert list(tmp_path.iterdir()) == []

    bad_classes = np.full(UTM.shape, 7, np.uint8)
    with pytest.raises(ValueError, match="no name"):
        write_class_raster(tmp_path / "classes.tif", bad_classes, UTM, ["water", "forest"])
    with pytest.raises(ValueError, match="grid"):
        write_cog(tmp_path / "heat.tif", np.zeros((2, 3)), UTM)
    assert list(tmp_path.iterdir()) == []

    # an existing output survives a failed rewrite untouched
    original = write_cog(tmp_path / "heat.tif", np.ones(UTM.shape, np.float32), UTM).read_bytes()
    with pytest.raises(RuntimeError):
        write_cog(tmp_path / "heat.tif", blocks_then_failure(), UTM, block_size=128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heat.tif"]
    assert (tmp_path / "heat.tif").read_bytes() == original


# --------------------------------------------------------------- incremental writers (issue 11)


def test_one_pass_over_an_accumulator_feeds_several_writers(tmp_path: Path) -> None:
    """Per-query COGs, one multi-band COG, a class raster and statistics from a single pass, each equal to
    the whole-array result."""
    rng = np.random.default_rng(5)
    with WeightedAccumulator(UTM, 3, weight="hann", decimation=2, block_size=48) as acc:
        for row in range(0, 190, 25):
            for col in range(0, 290, 25):
                acc.add(Window(col, row, 40, 40), rng.random(3))
        grid = acc.output_grid
        names = ["a", "b", "c"]
        with ExitStack() as stack:
            singles = [stack.enter_context(CogWriter(tmp_path / f"{n}.tif", grid, 1)) for n in names]
            multi = stack.enter_context(CogWriter(tmp_path / "all.tif", grid, 3, band_descriptions=names))
            classes = stack.enter_context(ClassRasterWriter(tmp_path / "classes.tif", grid, names))
            stats = ChannelStats.empty(3)
            for block in acc.iter_blocks():
                for c, writer in enumerate(singles):
                    writer.write(block.window, block.data[c])
                multi.write(block.window, block.data)
                classes.write(block.window, label_block(block).classes)
                stats = stats.merge(ChannelStats.of(block.data))
        mean = acc.mean()
    for c, name in enumerate(names):
        with rasterio.open(tmp_path / f"{name}.tif") as src:
            np.testing.assert_array_equal(src.read(1), np.where(np.isnan(mean[c]), -9999.0, mean[c]))
    write_cog(tmp_path / "whole.tif", mean, grid, band_descriptions=names)
    with rasterio.open(tmp_path / "all.tif") as src, rasterio.open(tmp_path / "whole.tif") as whole:
        assert src.descriptions == tuple(names) and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        np.testing.assert_array_equal(src.read(), whole.read())
        for level in range(len(src.overviews(1))):
            with (
                rasterio.open(tmp_path / "all.tif", overview_level=level) as a,
                rasterio.open(tmp_path / "whole.tif", overview_level=level) as b,
            ):
                np.testing.assert_array_equal(a.read(), b.read())
    expected_classes = np.where(np.isnan(mean[0]), 255, np.nan_to_num(mean, nan=-1).argmax(axis=0))
    with rasterio.open(tmp_path / "classes.tif") as src:
        np.testing.assert_array_equal(src.read(1), expected_classes)
        assert src.colormap(1)[255] == (0, 0, 0, 0)
    np.testing.assert_array_equal(stats.max, np.nanmax(mean, axis=(1, 2)))


def test_decimated_output_transform_is_the_source_transform_composed_with_the_scale(tmp_path: Path) -> None:
    """Issue 19: no half-pixel shift of decimated outputs (checked against rasterio's own numbers)."""
    with WeightedAccumulator(WGS84, 1, decimation=4, block_size=32) as acc:
        acc.add(Window(0, 0, 4, 4), [1.0])  # exactly the first output pixel
        acc.add(Window(8, 0, 5, 4), [2.0])
        path = tmp_path / "decimated.tif"
        with CogWriter(path, acc.output_grid, 1, block_size=128) as writer:
            for block in acc.iter_blocks():
                writer.write(block.window, block.data)
    with rasterio.open(path) as src:
        t = WGS84.transform  # pixel size × 4, same origin: written out, not computed by our code
        assert src.transform == Affine(t.a * 4, t.b * 4, t.c, t.d * 4, t.e * 4, t.f)
        assert src.xy(0, 0, offset="ul") == (10.0, 60.0)  # the source's own corner
        data = src.read(1, masked=True)
        assert (src.width, src.height) == (68, 45)
    assert data[0, 0] == 1.0 and data.mask[0, 1] and data[0, 2] == 2.0 and data[0, 3] == 2.0


def test_class_writer_refuses_unnamed_values_and_leaves_nothing(tmp_path: Path) -> None:
    classes = np.random.default_rng(2).integers(0, 3, size=UTM.shape).astype(np.uint8)
    with ClassRasterWriter(tmp_path / "c.tif", UTM, ["a", "b", "c"], block_size=128) as writer:
        writer.write(Window(0, 0, 300, 100), classes[:100])
        writer.write(Window(0, 100, 300, 100), classes[100:])
    with rasterio.open(tmp_path / "c.tif") as src:
        np.testing.assert_array_equal(src.read(1), classes)
    with pytest.raises(ValueError, match="no name"), ClassRasterWriter(tmp_path / "d.tif", UTM, ["a"]) as w:
        w.write(Window(0, 0, 300, 100), classes[:100])
    with pytest.raises(ValueError, match="do not fit"), CogWriter(tmp_path / "e.tif", UTM, 2) as cog:
        cog.write(Window(0, 0, 10, 10), np.zeros((1, 10, 10)))
    with pytest.raises(InputError, match="class names"):
        ClassRasterWriter(tmp_path / "f.tif", UTM, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "c.tif.aux.xml"]
