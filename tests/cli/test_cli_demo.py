"""`geo-dfm demo`: offline, it says loudly that GeoRSCLIP is missing and runs with the toy model."""

from __future__ import annotations

import json

import rasterio
from affine import Affine

from geo_dfm.cli.main import main


def test_demo_falls_back_loudly_and_writes_everything(tmp_path, toy_model_path, capsys):
    out = tmp_path / "demo-output"
    assert main(["demo", "-o", str(out), "--size", "256"]) == 0
    captured = capsys.readouterr()
    assert "FALLING BACK" in captured.err and "georsclip-vit-b-32" in captured.err
    assert "geo-dfm models download georsclip-vit-b-32" in captured.err
    assert str(out) in captured.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fallback"] is True and summary["model"]["name"] == "toy"
    for query in ("water", "runway"):
        path = summary["localize"]["outputs"]["heatmaps"][query]
        assert path.startswith(str(out))
        factor = summary["localize"]["parameters"]["decimate"]
        with rasterio.open(path) as src, rasterio.open(out / "scene.tif") as scene:
            assert src.crs == scene.crs and src.transform == scene.transform * Affine.scale(factor)
    assert json.loads((out / "classify" / "summary.json").read_text())["outputs"]["classes"] == str(
        out / "classify" / "classes.tif"
    )
    assert (out / "classify" / "classes.tif").is_file()

    # an existing folder is refused without --overwrite, replaced with it
    assert main(["demo", "-o", str(out), "--size", "256"]) == 2
    assert main(["demo", "-o", str(out), "--size", "256", "--overwrite"]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
