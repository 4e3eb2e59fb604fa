"""The embedding index keeps entries per scene/model/chips and drops stale ones."""

from __future__ import annotations

import os

import numpy as np

from geo_dfm.jobs.embedding_index import EmbeddingIndex, IndexKey, SceneEmbeddings, scene_stamp


def _entry(scene: str, n: int, seed: int) -> SceneEmbeddings:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    return SceneEmbeddings(
        scene=scene,
        crs_wkt="EPSG:32633",
        transform=(2.0, 0.0, 500000.0, 0.0, -2.0, 5300000.0),
        windows=np.arange(n * 4).reshape(n, 4),
        embeddings=emb / np.linalg.norm(emb, axis=1, keepdims=True),
    )


def test_round_trip_and_stale_entries(tmp_path):
    scene = tmp_path / "a.tif"
    scene.write_bytes(b"x")
    setup = {"model": "toy", "chips": {"size": 64}}
    key = IndexKey(scene_stamp(scene), setup)
    index = EmbeddingIndex(tmp_path / "index.npz")
    assert index.get(key) is None
    entry = _entry(str(scene), 5, 0)
    index.put(key, entry)
    other_setup = IndexKey(scene_stamp(scene), {"model": "toy", "chips": {"size": 32}})
    index.put(other_setup, _entry(str(scene), 3, 1))
    index.save()

    reloaded = EmbeddingIndex(tmp_path / "index.npz")
    assert len(reloaded) == 2
    got = reloaded.get(key)
    np.testing.assert_array_equal(got.embeddings, entry.embeddings)
    np.testing.assert_array_equal(got.windows, entry.windows)
    assert got.crs_wkt == "EPSG:32633" and got.scene == str(scene)
    assert got.transform == entry.transform

    # the scene file changes: the old key misses, storing the new entry drops the stale one
    scene.write_bytes(b"xy")
    os.utime(scene, ns=(1, 1))
    new_key = IndexKey(scene_stamp(scene), setup)
    assert reloaded.get(new_key) is None
    reloaded.put(new_key, _entry(str(scene), 2, 2))
    assert len(reloaded) == 2
    assert reloaded.get(key) is None and reloaded.get(other_setup) is not None


def test_unreadable_index_is_rebuilt(tmp_path, caplog):
    path = tmp_path / "index.npz"
    path.write_bytes(b"not a zip")
    index = EmbeddingIndex(path)
    assert len(index) == 0
    assert "unreadable" in caplog.text
