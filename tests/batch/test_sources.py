"""Scene inputs of a batch run: paths, globs, text lists, STAC ItemCollections → ordered scenes with ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geo_dfm.batch.sources import SceneRef, resolve_scenes
from tile_tools.errors import InputError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_paths_and_globs_keep_their_order_and_count_once(tmp_path):
    a, b, c = (touch(tmp_path / "tiles" / f"{n}.tif") for n in ("b", "a", "c"))
    scenes = resolve_scenes([str(a), str(tmp_path / "tiles" / "*.tif")])
    assert [s.id for s in scenes] == ["b", "a", "c"]  # b given first; the glob is sorted; b counted once
    assert scenes[1] == SceneRef("a", str(b.absolute()))


def test_a_text_list_takes_paths_from_its_folder_and_passes_gdal_paths_verbatim(tmp_path):
    listing = tmp_path / "lists" / "scenes.txt"
    listing.parent.mkdir()
    listing.write_text(
        "# county tiles\n"
        "relative/x.tif\n"
        "\n"
        "/vsicurl/https://example.com/data/y.tif?token=1\n"
        "/vsis3/bucket/prefix/z.tif\n"
        "https://example.com/w.tif\n",
        encoding="utf-8",
    )
    scenes = resolve_scenes([str(listing)])
    assert [s.id for s in scenes] == ["x", "y", "z", "w"]
    assert scenes[0].source == str(tmp_path / "lists" / "relative" / "x.tif")  # need not exist yet
    assert scenes[1].source == "/vsicurl/https://example.com/data/y.tif?token=1"
    assert scenes[2].source == "/vsis3/bucket/prefix/z.tif"
    assert scenes[3].source == "https://example.com/w.tif"


def test_equal_names_get_distinct_ids(tmp_path):
    first, second = touch(tmp_path / "a" / "scene.tif"), touch(tmp_path / "b" / "scene.tif")
    assert [s.id for s in resolve_scenes([str(first), str(second)])] == ["scene", "scene_2"]


def stac_item(item_id: str, assets: dict) -> dict:
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "assets": assets}


def test_a_stac_item_collection_gives_one_scene_per_item_from_the_asset_key(tmp_path):
    collection = {
        "type": "FeatureCollection",
        "features": [
            stac_item(
                "S2A_20230101",
                {"visual": {"href": "s3://bucket/S2A/TCI.tif"}, "B04": {"href": "s3://bucket/S2A/B04.tif"}},
            ),
            stac_item(
                "S2B_20230102",
                {"visual": {"href": "items/TCI.tif"}, "B04": {"href": "items/B04.tif"}},
            ),
        ],
    }
    path = tmp_path / "items.json"
    path.write_text(json.dumps(collection), encoding="utf-8")
    default = resolve_scenes([str(path)])
    assert [s.id for s in default] == ["s2a_20230101", "s2b_20230102"]
    assert default[0].source == "s3://bucket/S2A/TCI.tif"
    assert default[1].source == str(tmp_path / "items" / "TCI.tif")  # relative hrefs: from the JSON's folder
    red = resolve_scenes([str(path)], asset="B04")
    assert [s.source for s in red] == ["s3://bucket/S2A/B04.tif", str(tmp_path / "items" / "B04.tif")]
    with pytest.raises(InputError, match=r"has no asset 'B08' \(it has: B04, visual\)"):
        resolve_scenes([str(path)], asset="B08")


def test_without_a_visual_asset_the_one_raster_asset_is_used_or_the_user_must_choose(tmp_path):
    one = {"data": {"href": "/d/x.tif", "type": "image/tiff; application=geotiff"}, "meta": {"href": "m.xml"}}
    path = tmp_path / "item.json"
    path.write_text(json.dumps(stac_item("x", one)), encoding="utf-8")
    assert resolve_scenes([str(path)]) == [SceneRef("x", "/d/x.tif")]
    two = {**one, "other": {"href": "/d/y.tif", "type": "image/tiff"}}
    path.write_text(json.dumps(stac_item("x", two)), encoding="utf-8")
    with pytest.raises(InputError, match="asset: .*choose the STAC asset"):
        resolve_scenes([str(path)])


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="missing.tif: scene file not found"):
        resolve_scenes([str(tmp_path / "missing.tif")])
    with pytest.raises(InputError, match=r"\*.jp2: the pattern matches no file"):
        resolve_scenes([str(tmp_path / "*.jp2")])
    not_stac = tmp_path / "x.json"
    not_stac.write_text('{"type": "Catalog"}', encoding="utf-8")
    with pytest.raises(InputError, match="not a STAC ItemCollection"):
        resolve_scenes([str(not_stac)])
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(InputError, match="scenes: no scene given"):
        resolve_scenes([str(empty)])


def test_a_folder_gives_its_raster_files_and_a_slippy_folder_is_one_scene(tmp_path):
    folder = tmp_path / "county"
    for name in ("b.tif", "a.TIF", "c.vrt", "notes.txt", "sub/d.tif"):
        touch(folder / name)
    scenes = resolve_scenes([str(folder)])
    assert [s.id for s in scenes] == ["a", "b", "c"]  # sorted, rasters only, not the subfolder
    tiles = touch(tmp_path / "tiles" / "12" / "2200" / "1343.png").parents[2]
    assert resolve_scenes([str(tiles)]) == [SceneRef("tiles", str(tiles.absolute()))]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no raster file"):
        resolve_scenes([str(tmp_path / "empty")])
