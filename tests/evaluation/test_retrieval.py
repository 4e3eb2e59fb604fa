"""Retrieval evaluation: caption tables as the RS5M code reads them, recall against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from geo_dfm.evaluation import recall_at_k
from geo_dfm.evaluation.datasets import caption_paths, read_caption_csv
from geo_dfm.evaluation.images import load_rgb
from geo_dfm.evaluation.retrieval import evaluate_retrieval
from geo_dfm.evaluation.synthetic_data import pure_chips, write_captions
from tile_tools.errors import InputError


@pytest.fixture(scope="module")
def rsicd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retrieval") / "rsicd"
    write_captions(folder, pure_chips(per_class=4), "rsicd_test.csv", "RSICD_images", ".jpg", "gb18030")
    return folder


def test_captions_are_grouped_by_image(rsicd):
    data = read_caption_csv(rsicd / "rsicd_test.csv", rsicd / "RSICD_images", "gb18030")
    assert len(data.captions) == 2 * len(data.files)
    names = [f.name for f in data.files]
    assert names == sorted(names)  # repeated images: ordered by file name, as the RS5M code does
    assert np.bincount(data.image_of_text).tolist() == [2] * len(data.files)
    assert any("·" in caption for caption in data.captions)  # decoded as gb18030


def test_recall_matches_a_direct_computation(rsicd, toy_encoder):
    csv_path, images_dir, encoding = caption_paths(rsicd, "rsicd")
    assert encoding == "gb18030"
    result = evaluate_retrieval(toy_encoder, csv_path, images_dir, dataset="rsicd", encoding=encoding)
    data = read_caption_csv(csv_path, images_dir, encoding)
    images = toy_encoder.encode_images([load_rgb(f) for f in data.files]).astype(np.float64)
    texts = toy_encoder.encode_texts(list(data.captions)).astype(np.float64)
    # one dot product per pair: equal captions get bit-identical scores, as ties must
    similarity = np.array([[float(np.dot(text, image)) for image in images] for text in texts])
    direct = recall_at_k(similarity, data.image_of_text)
    assert result.image_to_text == pytest.approx(direct.image_to_text)
    assert result.text_to_image == pytest.approx(direct.text_to_image)
    assert (result.images, result.texts) == (len(data.files), len(data.captions))
    # captions name the class; with ~4 images per class a class-aware model ranks its image early
    chance = 10 / result.images * 100
    assert result.text_to_image[10] > chance and result.mean_recall == pytest.approx(direct.mean_recall)


def test_bad_tables_are_input_errors(rsicd, tmp_path):
    with pytest.raises(InputError, match="cannot be read as utf-8"):
        read_caption_csv(rsicd / "rsicd_test.csv", rsicd / "RSICD_images", "utf-8")
    table = tmp_path / "t.csv"
    table.write_text("file,caption\na.jpg,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="needs columns 'filename' and 'title'"):
        read_caption_csv(table, tmp_path)
    table.write_text("filename,title\nmissing.jpg,a caption\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing.jpg: image listed in t.csv not found"):
        read_caption_csv(table, tmp_path)
    table.write_text("filename,title\n", encoding="utf-8")
    with pytest.raises(InputError, match="no rows"):
        read_caption_csv(table, tmp_path)
    with pytest.raises(InputError, match="give the caption table with --csv"):
        caption_paths(tmp_path / "..", "csv")
