"""`geo-dfm eval …` end to end with the toy model on a miniature copy of the rs5m_test_data layout."""

from __future__ import annotations

import csv
import json

import pytest

from geo_dfm.cli.main import main

PAPER = "GeoRSCLIP B-32, paper run"


@pytest.fixture(scope="module")
def table(test_data_dir, tmp_path_factory, toy_model_path):
    out = tmp_path_factory.mktemp("eval-all") / "table"
    cache = out.parent / "cache"
    argv = ["eval", "all", str(test_data_dir), "--model", "toy", "--published", PAPER]
    assert main([*argv, "--cache", str(cache), "-o", str(out)]) == 0
    return out, cache


def test_eval_all_writes_the_whole_table_beside_the_published_numbers(table):
    out, _ = table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "eval all" and summary["published"] == [PAPER]
    assert set(summary["results"]) == {"AID", "RESISC45", "EuroSAT", "RSITMD", "RSICD", "AIR-SLT"}
    with open(out / "results.csv", encoding="utf-8", newline="") as handle:
        rows = {(r["benchmark"], r["metric"]): r for r in csv.DictReader(handle)}
    aid = rows[("AID", "top1")]
    assert float(aid["published"]) == 73.72 and aid["published_in"] == PAPER
    assert float(aid["difference"]) == pytest.approx(float(aid["ours"]) - 73.72)
    assert float(aid["ours"]) >= 85.0  # pure synthetic chips, the classes the toy model learned
    assert float(rows[("RSICD", "mean_recall")]["published"]) == 26.18
    assert rows[("RSICD", "image_to_text_r1")]["published"] == ""  # the paper gives only mR
    assert float(rows[("AIR-SLT", "rmi")]["published"]) == 0.74
    assert 0.0 <= float(rows[("AIR-SLT", "rmi")]["ours"]) <= 1.0
    markdown = (out / "results.md").read_text()
    assert "| AID | top-1 % |" in markdown and "| AIR-SLT | Rmi ↑ |" in markdown and PAPER in markdown
    for name in ("per_class.csv", "confusion.csv", "confusion.png", "predictions.csv"):
        assert (out / "EuroSAT" / name).is_file()
    assert summary["results"]["EuroSAT"]["root"].endswith("2750")
    with open(out / "AIR-SLT" / "samples.csv", encoding="utf-8", newline="") as handle:
        samples = list(csv.DictReader(handle))
    assert len(samples) == summary["results"]["AIR-SLT"]["samples"] >= 3


def test_rescoring_with_other_prompts_reads_the_cached_embeddings(table, test_data_dir, tmp_path, capsys):
    _, cache = table
    out = tmp_path / "eurosat"
    argv = [
        "eval",
        "zeroshot",
        str(test_data_dir / "eurosat-rgb"),
        "--dataset",
        "eurosat",
        "--templates",
        "none",
    ]
    assert main([*argv, "--model", "toy", "--cache", str(cache), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| EuroSAT | top-1 % |" in printed and "none for this model" in printed
    result = json.loads((out / "summary.json").read_text())["results"]["EuroSAT"]
    assert result["encoded_images"] == 0 and result["reused_images"] == result["images"] > 0


def test_eval_selo_scores_given_maps_without_a_model(table, test_data_dir, tmp_path, capsys):
    from PIL import Image

    maps = tmp_path / "maps"
    maps.mkdir()
    anno = json.loads((test_data_dir / "AIR-SLT" / "annotations" / "anno.json").read_text())
    for index, _ in enumerate(anno):
        Image.new("L", (320, 320), 0).save(maps / f"{index}.png")  # nothing found anywhere
    out = tmp_path / "selo"
    assert (
        main(["eval", "selo", str(test_data_dir / "AIR-SLT"), "--maps", str(maps), "-o", str(out), "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] is None
    assert summary["results"]["AIR-SLT"]["rmi"] == 0.0  # Rsu 0, Ras 1, Rda 0 for an all-zero map
    assert (
        "constant map" in (out / "AIR-SLT" / "samples.csv").read_text()
        if (out / "AIR-SLT").exists()
        else True
    )
    assert "constant map" in (out / "samples.csv").read_text()


def test_evaluate_is_an_alias_of_eval(capsys):
    assert main(["evaluate", "--help"]) == 0
    assert "zeroshot" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "dataset folder not found"),
        ("empty", "class folder has no images"),
        ("corrupt", "cannot read the image"),
    ],
)
def test_bad_datasets_exit_2_and_leave_no_output(layout, message, tmp_path, capsys, toy_model_path):
    data = tmp_path / "data"
    if layout != "missing":
        (data / "water").mkdir(parents=True)
    if layout == "corrupt":
        (data / "water" / "0.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    argv = ["eval", "zeroshot", str(data), "--model", "toy", "--no-cache", "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "geo-dfm" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["data"] if layout != "missing" else [])
