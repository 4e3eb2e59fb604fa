"""Every pairs format reads into the same pairs: tables (UTF-8, GB18030, TSV, Parquet), ImageFolders, shards."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geo_dfm.pairs import PairsFormat, ShardPairs, open_pairs, write_shards
from geo_dfm.pairs.shards import expand_shards
from geo_dfm.training import UnreadableImage
from tile_tools.errors import InputError


def test_csv_pairs_resolve_relative_paths_and_group_captions_of_one_image(tmp_path, write_png):
    for i in range(3):
        write_png(tmp_path / "imgs" / f"{i}.png", seed=i)
    (tmp_path / "pairs.csv").write_text(
        "image_path,caption\nimgs/0.png,a harbour\nimgs/0.png,boats in a harbour\nimgs/1.png,a forest\n"
        "imgs/2.png,\n",
        encoding="utf-8",
    )
    pairs = open_pairs(tmp_path / "pairs.csv")
    assert len(pairs) == 3  # the row without caption is left out
    first, second, third = (pairs.load(i) for i in range(3))
    assert first.caption == "a harbour" and first.group == second.group != third.group
    expected = np.asarray(Image.open(tmp_path / "imgs" / "0.png").convert("RGB"))
    assert np.array_equal(first.image, expected)


def test_gb18030_rsicd_table_tsv_and_parquet_read_alike(tmp_path, write_png):
    write_png(tmp_path / "RSICD_images" / "airport_1.jpg.png", seed=1)
    rows = [("airport_1.jpg.png", "机场上有许多飞机。"), ("airport_1.jpg.png", "many planes at an airport")]
    frame = pd.DataFrame(rows, columns=["filename", "title"])
    frame.to_csv(tmp_path / "rsicd_test.csv", index=False, encoding="gb18030")
    frame.to_csv(tmp_path / "tabbed.tsv", index=False, sep="\t")
    frame.to_parquet(tmp_path / "pairs.parquet")
    fmt = PairsFormat(images_dir=str(tmp_path / "RSICD_images"))
    for name in ("rsicd_test.csv", "tabbed.tsv", "pairs.parquet"):
        pairs = open_pairs(tmp_path / name, fmt)
        assert [pairs.load(i).caption for i in range(2)] == [caption for _, caption in rows], name
    with pytest.raises(InputError, match="--caption-column"):
        open_pairs(
            tmp_path / "pairs.parquet", PairsFormat(images_dir=fmt.images_dir, caption_column="sentence")
        )


def test_missing_and_corrupt_images_are_reported_and_left_out(tmp_path, write_png, caplog):
    write_png(tmp_path / "ok.png")
    (tmp_path / "corrupt.png").write_bytes(b"not an image at all")
    (tmp_path / "pairs.csv").write_text(
        "image_path,caption\nok.png,water\ncorrupt.png,forest\ngone.png,town\n", encoding="utf-8"
    )
    pairs = open_pairs(tmp_path / "pairs.csv")
    assert len(pairs) == 1
    assert set(pairs.skipped) == {str(tmp_path / "corrupt.png"), str(tmp_path / "gone.png")}
    assert pairs.skipped[str(tmp_path / "gone.png")] == "image file not found"
    assert str(tmp_path / "corrupt.png") in caplog.text
    (tmp_path / "none.csv").write_text("image_path,caption\ncorrupt.png,forest\n", encoding="utf-8")
    with pytest.raises(InputError, match="no readable image-text pair"):
        open_pairs(tmp_path / "none.csv")


def test_image_folder_captions_come_from_templates_with_gsd(tmp_path, write_png):
    write_png(tmp_path / "set" / "Bare_Land" / "a.png", seed=1)
    write_png(tmp_path / "set" / "Forest" / "b.png", seed=2)
    write_png(tmp_path / "set" / "Forest" / "c.png", seed=3)
    fmt = PairsFormat(templates="remoteclip", gsd=0.5)
    pairs = open_pairs(tmp_path / "set", fmt)
    captions = [record.caption for record in pairs.records]
    assert captions == [
        "a satellite photo of bare land, 0.5 m per pixel.",
        "a satellite photo of forest, 0.5 m per pixel.",
        "a satellite photo of forest, 0.5 m per pixel.",
    ]
    assert [record.group for record in pairs.records] == [0, 1, 1]
    rs105 = open_pairs(tmp_path / "set")
    assert all("forest" in r.caption for r in rs105.records[1:])
    assert [r.caption for r in rs105.records] == [r.caption for r in open_pairs(tmp_path / "set").records]


def _png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), seed, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_shards_stream_every_sample_once_per_epoch_in_a_seeded_order(tmp_path):
    samples = [
        (f"k{i:03d}", {"png": _png_bytes(i), "txt": f"caption {i}".encode(), "cls": b"3"}) for i in range(10)
    ]
    samples.append(("bad", {"png": b"broken", "txt": b"caption bad"}))
    samples.append(("nocaption", {"png": _png_bytes(99)}))
    paths = write_shards(samples, tmp_path / "shards", per_shard=4)
    assert len(paths) == 3
    assert expand_shards(str(tmp_path / "shards" / "pairs-{000000..000002}.tar")) == paths
    stream = ShardPairs(tmp_path / "shards", buffer=3)
    assert len(stream) == 11  # image + caption; the sample without caption does not count

    def epoch(e, seed=0):
        return [
            p.caption if not isinstance(p, UnreadableImage) else str(p.source)
            for p in stream.iter_epoch(e, seed)
        ]

    first = epoch(0)
    assert sorted(first) == sorted([f"caption {i}" for i in range(10)] + [f"{paths[2]}:bad.png"])
    assert first == epoch(0) and first != epoch(1)
    decoded = [p for p in stream.iter_epoch(0, 0) if not isinstance(p, UnreadableImage)]
    assert all(p.group == 3 and p.image.shape == (8, 8, 3) for p in decoded)
    assert {int(p.image[0, 0, 0]) for p in decoded} == set(range(10))


def test_unknown_paths_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="pairs not found"):
        open_pairs(tmp_path / "nothing.csv")
    (tmp_path / "notes.md").write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match="unknown pairs format"):
        open_pairs(tmp_path / "notes.md")
    with pytest.raises(InputError, match="shard not found"):
        open_pairs(str(tmp_path / "x-{000..003}.tar"))
