"""AIR-SLT evaluation: maps from files or from the localize job, scored as 8-bit grey images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from geo_dfm.evaluation import selo_metrics
from geo_dfm.evaluation.air_slt import read_air_slt
from geo_dfm.evaluation.selo import evaluate_selo
from geo_dfm.evaluation.synthetic_data import write_air_slt
from geo_dfm.jobs.params import ModelParams
from tile_tools.errors import InputError

TOY = ModelParams(name="toy", device="cpu")


@pytest.fixture(scope="module")
def air_slt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("selo") / "AIR-SLT"
    write_air_slt(folder)
    return folder


def smooth_map(shape, seed) -> np.ndarray:
    from scipy import ndimage

    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 25)
    return (noise - noise.min()) / (noise.max() - noise.min())


def test_grey_png_maps_score_as_grey_over_255(air_slt, tmp_path):
    samples = read_air_slt(air_slt)
    maps = tmp_path / "maps"
    maps.mkdir()
    expected = []
    for sample in samples:
        with Image.open(sample.image) as image:
            shape = image.size[::-1]
        grey = (smooth_map(shape, sample.index) * 255).astype(np.uint8)
        Image.fromarray(grey).save(maps / f"{sample.index}.png")
        expected.append(selo_metrics(grey / 255.0, [list(r) for r in sample.regions]))
    result = evaluate_selo(air_slt, maps_dir=maps)
    assert [dict(s.scores) for s in result.samples] == [dict(e) for e in expected]
    assert result.means["rmi"] == pytest.approx(np.mean([e.rmi for e in expected]))
    assert result.source.startswith("maps:")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_float_maps_are_stored_as_rounded_grey_levels(air_slt, tmp_path):
    sample = read_air_slt(air_slt)[0]
    with Image.open(sample.image) as image:
        width, height = image.size
    probability = smooth_map((height, width), 7).astype(np.float32)
    maps = tmp_path / "maps"
    maps.mkdir()
    for other in read_air_slt(air_slt):
        profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32")
        with rasterio.open(maps / f"probmap_{other.index}.tif", "w", **profile) as out:
            out.write(probability, 1)
    result = evaluate_selo(air_slt, maps_dir=maps)
    grey = np.rint(probability.astype(np.float64) * 255).astype(np.uint8)
    assert dict(result.samples[0].scores) == dict(
        selo_metrics(grey / 255.0, [list(r) for r in sample.regions])
    )


def test_maps_from_localize_are_the_jobs_own(air_slt, tmp_path):
    from geo_dfm.jobs.localize import LocalizeParams, run_localize
    from geo_dfm.progress import Progress

    saved = tmp_path / "saved"
    result = evaluate_selo(air_slt, model=TOY, method="selo", save_maps_dir=saved)
    assert result.source == "localize --method selo"
    first = read_air_slt(air_slt)[0]
    summary = run_localize(
        LocalizeParams(
            scene=str(first.image),
            queries=(first.caption,),
            output=str(tmp_path / "direct"),
            method="selo",
            model=TOY,
        ),
        Progress(),
    )
    with rasterio.open(summary["outputs"]["heatmaps"][first.caption]) as src:
        band = src.read(1).astype(np.float64)
    grey = np.rint(band * 255).astype(np.uint8)  # the selo map is g/255: exact grey levels
    assert np.abs(grey - band * 255).max() < 1e-3
    assert dict(result.samples[0].scores) == dict(
        selo_metrics(grey / 255.0, [list(r) for r in first.regions])
    )
    # kept maps score the same when given back with --maps
    again = evaluate_selo(air_slt, maps_dir=saved)
    assert [dict(s.scores) for s in again.samples] == [dict(s.scores) for s in result.samples]
    assert all(0.0 <= s.scores.rmi <= 1.0 for s in result.samples)


def test_bad_maps_and_annotations_are_input_errors(air_slt, tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    with pytest.raises(InputError, match=r"no map for sample\(s\) 0"):
        evaluate_selo(air_slt, maps_dir=maps)
    for sample in read_air_slt(air_slt):
        Image.fromarray(np.zeros((10, 12), np.uint8)).save(maps / f"{sample.index}.png")
    with pytest.raises(InputError, match="map of sample 0 is 12×10 px"):
        evaluate_selo(air_slt, maps_dir=maps)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(maps / "0.png")
    with pytest.raises(InputError, match="one grey band, this file has 3"):
        evaluate_selo(air_slt, maps_dir=maps)
    broken = tmp_path / "broken"
    (broken / "annotations").mkdir(parents=True)
    (broken / "annotations" / "anno.json").write_text(json.dumps([{"caption": "x", "jpg_name": "0.jpg"}]))
    with pytest.raises(InputError, match="'points' must be a list of polygons"):
        evaluate_selo(broken, maps_dir=maps)
    with pytest.raises(InputError, match="AIR-SLT folder not found"):
        evaluate_selo(tmp_path / "nowhere", maps_dir=maps)
