"""Zero-shot evaluation with the trained toy model on a synthetic ImageFolder, and the embedding cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from geo_dfm.evaluation.embedding_cache import EmbeddingCache, image_embeddings
from geo_dfm.evaluation.images import load_rgb
from geo_dfm.evaluation.synthetic_data import pure_chips, write_image_folder
from geo_dfm.evaluation.zeroshot import evaluate_zeroshot
from geo_dfm.models.encoder import resize_short_side_and_crop
from tile_tools.errors import InputError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    chips = pure_chips(per_class=12)
    return write_image_folder(
        tmp_path_factory.mktemp("zeroshot") / "landscapes",
        chips,
        ".png",
        rename=lambda n: n.replace(" ", "_"),
    )


def test_the_toy_model_knows_the_synthetic_classes(folder, toy_encoder):
    result = evaluate_zeroshot(toy_encoder, folder)
    assert result.images >= 40 and len(result.classes) >= 4
    assert "bare soil" in result.classnames and "bare_soil" in result.classes  # folder names → prompt names
    assert result.top1 >= 85.0, result.as_dict()
    assert result.top5 >= result.top1
    assert result.confusion.sum() == result.images
    assert np.trace(result.confusion) == pytest.approx(result.top1 / 100 * result.images)
    assert result.confusion.sum(axis=1).tolist() == np.bincount(result.labels).tolist()
    assert result.templates == 105


def test_embeddings_match_encoding_the_files_one_by_one(folder, toy_encoder):
    result = evaluate_zeroshot(toy_encoder, folder, templates="none")
    direct = toy_encoder.encode_images([load_rgb(f) for f in result.files[:8]])
    background = image_embeddings(toy_encoder, result.files[:8]).vectors
    np.testing.assert_allclose(background, direct, atol=1e-6)
    assert resize_short_side_and_crop(load_rgb(result.files[0]), 64).shape == (64, 64, 3)


def test_classnames_replace_the_folder_names(folder, toy_encoder):
    data_classes = sorted(p.name for p in folder.iterdir())
    swapped = list(reversed(data_classes))  # deliberately wrong names: accuracy must collapse
    result = evaluate_zeroshot(toy_encoder, folder, classnames=swapped, templates="none")
    assert result.classnames == tuple(swapped) and result.top1 < 50
    with pytest.raises(InputError, match="one non-empty name per class folder"):
        evaluate_zeroshot(toy_encoder, folder, classnames=["water"])


def test_the_cache_reuses_unchanged_files_only(folder, toy_encoder, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    first = evaluate_zeroshot(toy_encoder, folder, templates="none", cache=cache)
    assert (first.encoded_images, first.reused_images) == (first.images, 0)
    again = evaluate_zeroshot(toy_encoder, folder, templates="rs105", cache=cache)
    assert (again.encoded_images, again.reused_images) == (0, first.images)
    touched = first.files[3]
    os.utime(touched, ns=(1_000_000_000, 1_000_000_000))  # a changed stamp
    partial = evaluate_zeroshot(toy_encoder, folder, templates="none", cache=cache)
    assert (partial.encoded_images, partial.reused_images) == (1, first.images - 1)
    assert partial.top1 == first.top1
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 1  # the superseded entry of the same folder and model is gone


def test_a_changed_model_never_reads_stale_embeddings(folder, toy_encoder, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    files = evaluate_zeroshot(toy_encoder, folder, templates="none").files[:4]
    before = np.array(image_embeddings(toy_encoder, files, cache).vectors)
    weight = toy_encoder.model.visual.conv1.weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.mul_(1.5)  # what a training step does: same describe(), same weights file
        changed = image_embeddings(toy_encoder, files, cache)
        assert changed.encoded == 4 and not np.allclose(changed.vectors, before)
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert image_embeddings(toy_encoder, files, cache).reused == 4


def test_bad_folders_are_input_errors(tmp_path, toy_encoder):
    with pytest.raises(InputError, match="dataset folder not found"):
        evaluate_zeroshot(toy_encoder, tmp_path / "missing")
    (tmp_path / "empty" / "water").mkdir(parents=True)
    with pytest.raises(InputError, match="class folder has no images"):
        evaluate_zeroshot(toy_encoder, tmp_path / "empty")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="no class folders"):
        evaluate_zeroshot(toy_encoder, tmp_path / "flat")
    (tmp_path / "broken" / "water").mkdir(parents=True)
    (tmp_path / "broken" / "water" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"x\.jpg: cannot read the image"):
        evaluate_zeroshot(toy_encoder, tmp_path / "broken", templates="none")
