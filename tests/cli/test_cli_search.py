"""`geo-dfm search` end to end: text-to-image retrieval with a reusable embedding index."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
from rasterio.windows import Window

from geo_dfm.cli.main import main


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, toy_model_path):
    from geo_dfm.synthetic import make_scene

    folder = tmp_path_factory.mktemp("search")
    first = make_scene(folder / "a.tif", width=320, height=320, gsd=2.0, seed=21)
    # the second scene lies in another UTM zone: its footprints are reprojected to the first's CRS
    second = make_scene(folder / "b.tif", width=320, height=320, gsd=2.0, seed=22, crs="EPSG:32632")
    return first, second


def test_forest_search_and_index_reuse(scenes, tmp_path, monkeypatch, capsys):
    from geo_dfm.models.encoder import Encoder

    first, second = scenes
    out = tmp_path / "forest.gpkg"
    argv = ["search", str(first.path), str(second.path), "forest", "--top-k", "10", "-o", str(out)]
    assert main([*argv, "--model", "toy", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["encoded_chips"] > 0 and summary["reused_chips"] == 0
    results = gpd.read_file(out, layer="results")
    assert results.crs == first.crs
    assert list(results["rank"]) == list(range(1, 11))
    assert (np.diff(results["score"]) <= 0).all()
    by_path = {str(first.path): first, str(second.path): second}
    forest = 0
    for row in results.itertuples():
        scene = by_path[row.scene]
        col, row_off, width, height = map(int, row.window.split(","))
        truth, _ = scene.window_truth(row_off, col, height, width)
        forest += truth == "forest"
        if scene is first:  # footprint = the chip's window in the scene's own CRS
            expected = Window(col, row_off, width, height)
            from rasterio.windows import bounds

            assert row.geometry.bounds == pytest.approx(bounds(expected, first.transform))
    assert forest >= 8, f"{forest}/10 forest chips"
    assert summary["outputs"]["index"] == str(tmp_path / "geo-dfm-embeddings")
    assert [r["rank"] for r in summary["results"]] == list(range(1, 11))

    # a later query over the same scenes encodes no image
    calls = []
    monkeypatch.setattr(Encoder, "encode_images", lambda self, *a, **k: calls.append(1))
    water = tmp_path / "water.gpkg"
    argv = ["search", str(first.path), str(second.path), "water", "--top-k", "5", "-o", str(water)]
    assert main([*argv, "--model", "toy", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert calls == [] and summary["encoded_chips"] == 0 and summary["reused_chips"] > 0
    water_hits = gpd.read_file(water, layer="results")
    assert len(water_hits) == 5 and set(water_hits["query"]) == {"water"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{a}", " ", "-o", "{tmp}/x.gpkg"], "empty query"),
        (["{a}", "forest", "-o", "{tmp}/x.txt"], ".gpkg"),
        (["forest", "-o", "{tmp}/x.gpkg"], "at least one scene"),
        (["{tmp}/missing.tif", "forest", "-o", "{tmp}/x.gpkg"], "not found"),
        (["{a}", "forest", "-o", "{tmp}/exists.gpkg"], "--overwrite"),
    ],
)
def test_bad_input(scenes, tmp_path, capsys, args, message):
    (tmp_path / "exists.gpkg").write_bytes(b"keep")
    argv = ["search"] + [a.format(a=scenes[0].path, tmp=tmp_path) for a in args] + ["--model", "toy"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.gpkg"]
    assert (tmp_path / "exists.gpkg").read_bytes() == b"keep"
