"""`geo-dfm chips`: chip GeoTIFFs + index GeoPackage + summary, progress events, bad input → exit 2."""

from __future__ import annotations

import json

import geopandas as gpd
import mercantile
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geo_dfm.cli.main import main


def write(path, data, crs="EPSG:32632", transform=None, nodata=None):
    count, height, width = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=count,
        dtype=data.dtype.name,
        crs=crs,
        transform=transform or from_origin(500000, 5600000, 10, 10),
        nodata=nodata,
    ) as dst:
        dst.write(data)
    return path


@pytest.fixture
def scene(tmp_path):
    data = np.random.default_rng(3).integers(1, 4000, (4, 100, 120)).astype(np.uint16)
    data[:, 60:, :] = 0
    return write(tmp_path / "scene.tif", data, nodata=0)


def test_chips_writes_georeferenced_chips_and_an_index(tmp_path, scene, capsys):
    out = tmp_path / "chips"
    code = main(
        [
            "chips",
            str(scene),
            "-o",
            str(out),
            "--size",
            "32",
            "--overlap",
            "0",
            "--bands",
            "3,2,1",
            "--min-valid",
            "0.5",
            "--progress",
            "jsonl",
        ]
    )
    assert code == 0, capsys.readouterr().err
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "result"
    summary = json.loads((out / "summary.json").read_text())
    assert summary == events[-1]["summary"]
    index = gpd.read_file(out / "index.gpkg", layer="chips")
    assert len(index) == summary["chips"] > 0
    assert set(index.row_off) == {0, 32}  # rows 64+ are nodata: below --min-valid
    with rasterio.open(scene) as src:
        for _, row in index.iterrows():
            window = Window(row.col_off, row.row_off, row.width, row.height)
            with rasterio.open(out / row.file) as chip:
                assert chip.crs == src.crs
                assert chip.transform == window_transform(window, src.transform)
                assert chip.count == 3 and chip.dtypes[0] == "uint8"
            assert row.geometry.bounds == pytest.approx(rasterio.windows.bounds(window, src.transform))


def test_chips_xyz_tiles_carry_their_tile_ids(tmp_path):
    data = np.random.default_rng(4).integers(1, 255, (3, 80, 80), dtype=np.uint8)
    scene = write(
        tmp_path / "geo.tif", data, crs="EPSG:4326", transform=from_origin(9.0, 48.0, 0.0001, 0.0001)
    )
    out = tmp_path / "tiles"
    assert main(["chips", str(scene), "-o", str(out), "--xyz", "16", "--min-valid", "0.1"]) == 0
    index = gpd.read_file(out / "index.gpkg", layer="chips")
    assert index.crs.to_epsg() == 3857
    for _, row in index.iterrows():
        z, x, y = (int(v) for v in row.tile.split("/"))
        with rasterio.open(out / row.file) as chip:
            assert tuple(chip.bounds) == pytest.approx(tuple(mercantile.xy_bounds(x, y, z)), abs=1e-6)


def test_chips_without_crs_write_a_plain_index(tmp_path):
    data = np.random.default_rng(5).integers(1, 255, (3, 64, 64), dtype=np.uint8)
    scene = write(tmp_path / "pixels.tif", data, crs=None)
    out = tmp_path / "out"
    assert main(["chips", str(scene), "-o", str(out), "--size", "32", "--overlap", "0"]) == 0
    import pyogrio

    table = pyogrio.read_dataframe(out / "index.gpkg", layer="chips", read_geometry=False)
    assert len(table) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.tif"], "file not found"),
        (["junk.tif"], "not a raster GDAL can read"),
        (["empty.tif"], "no valid data"),
        (["scene.tif", "--size", "512"], "smaller than a 512 px chip"),
        (["scene.tif", "--bands", "1,2,9"], "band 9 does not exist"),
        (["scene.tif", "--size", "32", "--aoi", "0,0,10,10"], "outside the scene"),
        (["scene.tif", "--xyz", "31"], "zoom 31 is out of range"),
        (["nocrs.tif", "--size", "100m"], "no CRS"),
        (["nocrs.tif", "--xyz", "12"], "no CRS"),
        (["scene.tif", "--overlap", "lots"], "cannot read 'lots'"),
    ],
)
def test_bad_input_exits_2_without_output(tmp_path, scene, capsys, args, message):
    (tmp_path / "junk.tif").write_text("junk")
    write(tmp_path / "empty.tif", np.zeros((1, 256, 256), np.uint8), nodata=0)
    write(tmp_path / "nocrs.tif", np.ones((3, 64, 64), np.uint8), crs=None)
    before = set(tmp_path.iterdir())
    args = [str(tmp_path / args[0]), *args[1:]]
    assert main(["chips", *args, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert set(tmp_path.iterdir()) == before  # no output folder, no temporary left


def test_existing_output_needs_overwrite(tmp_path, scene):
    out = tmp_path / "out"
    args = ["chips", str(scene), "-o", str(out), "--size", "50", "--overlap", "0", "--min-valid", "0"]
    assert main(args) == 0
    assert main(args) == 2
    assert main([*args, "--overwrite", "--size", "60"]) == 0
    assert json.loads((out / "summary.json").read_text())["parameters"]["chip_size"] == "60"
