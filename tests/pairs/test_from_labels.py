"""`geo-dfm pairs SCENE… LABELS`: chips labelled from a map, checked against rasterio's own numbers."""

from __future__ import annotations

import json
from collections import Counter

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geo_dfm.cli.main import main

SIZE = 192


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """Two scenes side by side (UTM 33N) and one labels layer for both, in EPSG:4326."""
    from geo_dfm.synthetic import make_scene

    folder = tmp_path_factory.mktemp("region")
    scenes = [
        make_scene(
            folder / f"scene{i}.tif",
            width=SIZE,
            height=SIZE,
            gsd=2.0,
            seed=50 + i,
            centre_lonlat=(15.0 + 0.01 * i, 48.0),
        )
        for i in range(2)
    ]
    labels = pd.concat([gpd.read_file(s.truth_path) for s in scenes], ignore_index=True)
    frame = gpd.GeoDataFrame(labels, crs=scenes[0].crs).rename(columns={"class_name": "cover"})
    frame.to_crs("EPSG:4326").to_file(folder / "labels.gpkg", layer="landcover")
    return folder, scenes


def _run(folder, scenes, out, *extra):
    return main(
        ["pairs", *(str(s.path) for s in scenes), str(folder / "labels.gpkg"), "-o", str(out), *extra]
    )


def _truth(scene, row) -> tuple[str, float]:
    with rasterio.open(scene.truth_raster_path) as src:
        block = src.read(1, window=Window(row.col_off, row.row_off, row.width, row.height))
    counts = np.bincount(block.ravel(), minlength=256)[: len(scene.class_names)]
    return scene.class_names[int(counts.argmax())], counts.max() / block.size


def test_chips_carry_the_majority_label_and_the_scene_georeferencing(region, tmp_path):
    folder, scenes = region
    out = tmp_path / "pairs"
    assert _run(folder, scenes, out, "--label-field", "cover", "--chip-size", "32", "--overlap", "0", "--min-coverage", "0.8") == 0  # fmt: skip
    table = pd.read_csv(out / "pairs.csv")
    by_path = {str(s.path): s for s in scenes}
    assert set(table["scene"]) == set(by_path) and (table["kind"] == "label").all()
    for row in table.itertuples():
        scene = by_path[row.scene]
        label, share = _truth(scene, row)
        assert row.label == label, row
        assert row.coverage == pytest.approx(share, abs=0.03)
        assert row.coverage >= 0.8 and row.label in row.caption
    for row in table.sample(5, random_state=0).itertuples():
        scene = by_path[row.scene]
        window = Window(row.col_off, row.row_off, row.width, row.height)
        with rasterio.open(out / row.image_path) as chip, rasterio.open(scene.path) as src:
            assert chip.crs == src.crs
            assert chip.transform.almost_equals(window_transform(window, src.transform))
            assert np.array_equal(chip.read(), src.read(window=window))
    counts = pd.read_csv(out / "class_counts.csv").set_index("label")["chips"].to_dict()
    assert counts == dict(Counter(table["label"]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["class_counts"] == counts and summary["crs"] == "EPSG:4326"
    index = gpd.read_file(out / "pairs.gpkg", layer="pairs")
    assert index.crs.to_epsg() == 4326 and len(index) == len(table)
    first = table.iloc[0]
    centre = rasterio.transform.xy(by_path[first.scene].transform, first.row_off + 16, first.col_off + 16)
    centre_ll = gpd.GeoSeries(gpd.points_from_xy([centre[0]], [centre[1]]), crs=scenes[0].crs).to_crs(4326)[0]
    assert index[index["image_path"] == first.image_path].geometry.iloc[0].contains(centre_ll)


def test_negatives_come_from_unlabelled_areas(region, tmp_path):
    folder, scenes = region
    labels = gpd.read_file(folder / "labels.gpkg")
    labels[labels["cover"] != "water"].to_file(tmp_path / "no-water.gpkg")
    out = tmp_path / "pairs"
    assert main(
        ["pairs", str(scenes[0].path), str(tmp_path / "no-water.gpkg"), "--label-field", "cover", "-o", str(out),
         "--chip-size", "32", "--overlap", "0", "--negatives", "background", "--captions-per-chip", "2"]
    ) == 0  # fmt: skip
    table = pd.read_csv(out / "pairs.csv")
    negatives = table[table["kind"] == "negative"]
    assert len(negatives) > 0 and (negatives["label"] == "background").all()
    for row in negatives.itertuples():
        assert _truth(scenes[0], row) == ("water", 1.0)
    assert (table.groupby("image_path")["caption"].nunique() == 2).all()  # two distinct templates per chip


def test_random_windows_are_seeded(region, tmp_path):
    folder, scenes = region
    args = ("--label-field", "cover", "--chip-size", "40", "--sampling", "random", "--samples", "15", "--seed", "3")  # fmt: skip
    assert _run(folder, scenes[:1], tmp_path / "a", *args) == 0
    assert _run(folder, scenes[:1], tmp_path / "b", *args) == 0
    a, b = pd.read_csv(tmp_path / "a" / "pairs.csv"), pd.read_csv(tmp_path / "b" / "pairs.csv")
    assert a.equals(b) and 0 < len(a) <= 15
    assert ((a.col_off + a.width <= SIZE) & (a.row_off + a.height <= SIZE)).all()


def test_bad_label_field_and_empty_overlap_exit_2_with_no_output(region, tmp_path, capsys):
    folder, scenes = region
    out = tmp_path / "pairs"
    assert _run(folder, scenes, out, "--label-field", "klass") == 2
    err = capsys.readouterr().err
    assert "--label-field" in err and "no field 'klass'" in err and "cover" in err
    assert not out.exists()
    far = gpd.read_file(folder / "labels.gpkg")
    far["geometry"] = far.geometry.translate(xoff=20.0)  # 20° east: nowhere near the scenes
    far.to_file(tmp_path / "far.gpkg")
    assert main(["pairs", str(scenes[0].path), str(tmp_path / "far.gpkg"), "--label-field", "cover", "-o", str(out), "--chip-size", "32"]) == 2  # fmt: skip
    assert "do not overlap" in capsys.readouterr().err
    assert not out.exists()
    assert main(["pairs", str(scenes[0].path), "-o", str(out), "--label-field", "cover"]) == 2
    assert not out.exists()


def test_the_registered_job_from_plain_parameters_matches_the_command(region, tmp_path):
    """What the worker and the QGIS plugin send (job name + JSON parameters) makes the CLI's pairs."""
    from geo_dfm.jobs.registry import run_job_by_name
    from geo_dfm.progress import Progress

    folder, scenes = region
    params = {
        "scenes": [str(scenes[0].path)],
        "labels": str(folder / "labels.gpkg"),
        "label_field": "cover",
        "output": str(tmp_path / "by-name"),
        "chips": {"chip_size": "32", "overlap": "0"},
    }
    summary = run_job_by_name("pairs", params, Progress())
    assert _run(folder, scenes[:1], tmp_path / "cli", "--label-field", "cover", "--chip-size", "32", "--overlap", "0") == 0  # fmt: skip
    by_name, cli = (pd.read_csv(tmp_path / name / "pairs.csv") for name in ("by-name", "cli"))
    assert len(by_name) == summary["pairs"] > 0 and by_name.equals(cli)
