"""The embedding index (a folder): entries per scene/model/chips, streamed in, stale ones dropped, and
never a path that is not an index."""

from __future__ import annotations

import os

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from geo_dfm.errors import InputError
from geo_dfm.jobs.embedding_index import EmbeddingIndex, IndexKey, SceneEmbeddings, scene_stamp
from tile_tools.pixel_grid import PixelGrid

GRID = PixelGrid(100, 80, Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 5300000.0), CRS.from_epsg(32633))


def _entry(scene: str, n: int, seed: int) -> SceneEmbeddings:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    return SceneEmbeddings(
        scene, GRID, np.arange(n * 4).reshape(n, 4), emb / np.linalg.norm(emb, axis=1, keepdims=True)
    )


def test_round_trip_and_stale_entries(tmp_path):
    scene = tmp_path / "a.tif"
    scene.write_bytes(b"x")
    setup = {"model": "toy", "chips": {"size": 64}}
    key = IndexKey(scene_stamp(scene), setup)
    index = EmbeddingIndex(tmp_path / "index")
    assert index.get(key) is None
    entry = _entry(str(scene), 5, 0)
    index.put(key, entry)
    other_setup = IndexKey(scene_stamp(scene), {"model": "toy", "chips": {"size": 32}})
    index.put(other_setup, _entry(str(scene), 3, 1))

    reloaded = EmbeddingIndex(tmp_path / "index")
    assert len(reloaded) == 2
    got = reloaded.get(key)
    np.testing.assert_array_equal(got.embeddings, entry.embeddings)
    np.testing.assert_array_equal(got.windows, entry.windows)
    assert got.grid == GRID and got.scene == str(scene)

    # the scene file changes: the old key misses, storing the new entry drops the stale one (and its files)
    scene.write_bytes(b"xy")
    os.utime(scene, ns=(1, 1))
    new_key = IndexKey(scene_stamp(scene), setup)
    assert reloaded.get(new_key) is None
    files = len(list((tmp_path / "index").iterdir()))
    reloaded.put(new_key, _entry(str(scene), 2, 2))
    assert len(reloaded) == 2
    assert reloaded.get(key) is None and reloaded.get(other_setup) is not None
    assert len(list((tmp_path / "index").iterdir())) == files


def test_a_streamed_entry_appears_only_when_complete(tmp_path):
    index = EmbeddingIndex(tmp_path / "index")
    key = IndexKey({"path": "/vsicurl/https://example.com/a.tif"}, {"m": 1})
    writer = index.writer(key, "a", GRID, np.zeros((4, 4), np.int64), 8)
    writer.append(np.ones((2, 8), np.float32))
    with pytest.raises(ValueError, match="2 embeddings for 4 windows"):
        writer.commit()
    writer.discard()
    assert EmbeddingIndex(tmp_path / "index").get(key) is None
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["index.json"]


@pytest.mark.parametrize("kind", ["file", "foreign folder"])
def test_a_path_that_is_not_an_index_is_refused_and_kept(tmp_path, kind):
    path = tmp_path / "index"
    if kind == "file":
        path.write_bytes(b"the user's file")
    else:
        path.mkdir()
        (path / "photo.jpg").write_bytes(b"jpeg")
    with pytest.raises(InputError, match="not a geo-dfm embedding index"):
        EmbeddingIndex(path)
    assert (path.read_bytes() if kind == "file" else (path / "photo.jpg").read_bytes()) in (
        b"the user's file",
        b"jpeg",
    )
