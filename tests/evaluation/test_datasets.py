"""Dataset readers: ImageFolder rules, caption order, AIR-SLT annotations, the rs5m_test_data layout."""

from __future__ import annotations

import json
import logging

import pytest

from geo_dfm.evaluation.air_slt import read_air_slt
from geo_dfm.evaluation.datasets import read_caption_csv, read_image_folder
from geo_dfm.evaluation.test_data import find_test_data
from tile_tools.errors import InputError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_image_folder_sorts_classes_and_files_like_torchvision(tmp_path):
    for name in (
        "b/2.JPG",
        "b/sub/1.png",
        "b/notes.txt",
        "A_x/z.tif",
        "A_x/a.webp",
        ".hidden/q.jpg",
        "b/.cache/x.jpg",
    ):
        touch(tmp_path / name)
    data = read_image_folder(tmp_path)
    assert data.classes == ("A_x", "b") and data.classnames == ("a x", "b")
    assert [f.relative_to(tmp_path).as_posix() for f in data.files] == [
        "A_x/a.webp",
        "A_x/z.tif",
        "b/2.JPG",
        "b/sub/1.png",
    ]
    assert data.labels.tolist() == [0, 0, 1, 1]


def test_eurosat_uses_its_2750_folder_and_presets_are_checked(tmp_path, caplog):
    touch(tmp_path / "eurosat-rgb" / "2750" / "Forest" / "1.jpg")
    touch(tmp_path / "eurosat-rgb" / "eurosat" / "x.jpg")
    with caplog.at_level(logging.WARNING):
        data = read_image_folder(tmp_path / "eurosat-rgb", "eurosat")
    assert data.root.name == "2750" and data.classes == ("Forest",)
    assert "differ from the published eurosat classes" in caplog.text and "annualcrop" in caplog.text


def test_captions_keep_the_table_order_when_no_image_repeats(tmp_path):
    for name in ("b.jpg", "a.jpg"):
        touch(tmp_path / name)
    (tmp_path / "t.csv").write_text('filename,title\nb.jpg,"one, quoted"\na.jpg,two\n', encoding="utf-8")
    data = read_caption_csv(tmp_path / "t.csv", tmp_path)
    assert [f.name for f in data.files] == ["b.jpg", "a.jpg"] and data.captions == ("one, quoted", "two")


def test_air_slt_annotations(tmp_path):
    entries = [{"caption": "a lake", "jpg_name": "0.jpg", "points": [[[1.5, 2], [10, 2], [10, 9]]]}]
    touch(tmp_path / "imgs" / "0.jpg")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "anno.json").write_text(json.dumps(entries))
    (sample,) = read_air_slt(tmp_path)
    assert sample.image == tmp_path / "imgs" / "0.jpg" and sample.regions == (
        ((1.5, 2.0), (10.0, 2.0), (10.0, 9.0)),
    )
    entries[0]["points"] = [[[1, 2, 3]]]
    (tmp_path / "annotations" / "anno.json").write_text(json.dumps(entries))
    with pytest.raises(InputError, match="polygon 0 is not a list"):
        read_air_slt(tmp_path)


def test_the_test_data_layout_is_found_and_gaps_reported(test_data_dir, tmp_path):
    layout = find_test_data(test_data_dir)
    assert set(layout.zeroshot) == {"AID", "RESISC45", "EuroSAT"} and set(layout.retrieval) == {
        "RSITMD",
        "RSICD",
    }
    assert layout.selo == test_data_dir / "AIR-SLT" and layout.missing == ()
    touch(tmp_path / "rsicd" / "rsicd_test.csv")
    partial = find_test_data(tmp_path, only=("rsicd", "AID"))
    assert set(partial.retrieval) == {"RSICD"} and partial.missing == ("AID",)
    with pytest.raises(InputError, match="unknown benchmark"):
        find_test_data(tmp_path, only=("imagenet",))
    with pytest.raises(InputError, match="none of the benchmarks"):
        find_test_data(tmp_path / "rsicd")
