"""Chip GeoTIFFs and the index GeoPackage carry rasterio's own transforms, CRS and bounds."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from tile_tools.chip_writer import export_chips, write_chip_geotiff, write_chip_index
from tile_tools.reader import SceneReader


def test_chip_geotiff_keeps_transform_crs_pixels_and_mask(tmp_path, make_scene, rng):
    data = rng.integers(1, 255, (3, 64, 64), dtype=np.uint8)
    with SceneReader(make_scene(data)) as reader, rasterio.open(reader.path) as src:
        chip = reader.read_chip(Window(40, 40, 32, 32))  # overhangs: 24×24 valid
        path = write_chip_geotiff(chip, tmp_path / "chip.tif")
        with rasterio.open(path) as out:
            assert out.crs == src.crs
            assert out.transform == rasterio.windows.transform(Window(40, 40, 32, 32), src.transform)
            np.testing.assert_array_equal(out.read(), chip.image.transpose(2, 0, 1))
            np.testing.assert_array_equal(out.dataset_mask() > 0, chip.mask)
            np.testing.assert_array_equal(out.read(window=Window(0, 0, 24, 24)), data[:, 40:, 40:])


def test_raw_chip_geotiff_keeps_the_source_dtype(tmp_path, make_scene, rng):
    data = rng.integers(0, 10000, (13, 32, 32)).astype(np.uint16)
    with SceneReader(make_scene(data), read_raw=True) as reader:
        chip = reader.read_chip(Window(0, 0, 32, 32))
        with rasterio.open(write_chip_geotiff(chip, tmp_path / "raw.tif", raw=True)) as out:
            assert out.count == 13 and out.dtypes[0] == "uint16"
            np.testing.assert_array_equal(out.read(), data)


def test_index_footprints_are_window_bounds(tmp_path, make_scene, rng):
    data = rng.integers(1, 255, (3, 64, 64), dtype=np.uint8)
    windows = [Window(0, 0, 32, 32), Window(32, 16, 32, 32)]
    with SceneReader(make_scene(data)) as reader:
        records = export_chips((reader.read_chip(w) for w in windows), tmp_path / "out")
        write_chip_index(records, reader.grid.crs, tmp_path / "out" / "index.gpkg")
        frame = gpd.read_file(tmp_path / "out" / "index.gpkg", layer="chips")
        assert frame.crs == reader.grid.crs
        for window, (_, row) in zip(windows, frame.iterrows(), strict=True):
            assert row.geometry.bounds == pytest.approx(window_bounds(window, reader.grid.transform))
            assert (row.col_off, row.row_off, row.scale) == (window.col_off, window.row_off, 32)
            assert (tmp_path / "out" / row.file).exists()
