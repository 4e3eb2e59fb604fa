"""`geo-dfm localize --method dense` and `geo-dfm classify --method dense` end to end with the trained toy model.

Oracles: georeferencing from rasterio (the scene's CRS and transform, composed with the decimation
scale); the localize map against the same windows mapped in memory by
:func:`geo_dfm.synthetic.measure.scene_maps` (whose patch features ``tests/models/test_dense.py`` checks
by construction); class polygons against the class raster's own pixel areas. Scene seed 213 (below the
toy model's training seeds, disjoint from the recipe-selection seeds 12-20 and other tests' seeds).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine

from geo_dfm.cli.main import main

SCENE_SEED = 213
LABELS = "water,forest,farmland,town,bare soil,runway"


@pytest.fixture(scope="module")
def scene(tmp_path_factory, toy_model_path):
    from geo_dfm.synthetic import make_scene

    folder = tmp_path_factory.mktemp("dense")
    return make_scene(folder / "scene.tif", width=256, height=256, gsd=2.0, seed=SCENE_SEED)


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def localized(scene):
    out = scene.path.parent / "localize"
    argv = ["localize", str(scene.path), "water", "runway", "-o", str(out), "--model", "toy"]
    assert main([*argv, "--method", "dense", "--decimate", "1"]) == 0
    return out, _summary(out)


@pytest.fixture(scope="module")
def classified(scene):
    out = scene.path.parent / "classify"
    argv = ["classify", str(scene.path), "--labels", LABELS, "-o", str(out), "--model", "toy"]
    assert main([*argv, "--method", "dense"]) == 0
    return out, _summary(out)


def test_dense_heatmaps_carry_the_scene_georeferencing(scene, localized):
    out, summary = localized
    with rasterio.open(scene.path) as src:
        crs, transform, shape = src.crs, src.transform, src.shape
    for query in ("water", "runway"):
        with rasterio.open(summary["outputs"]["heatmaps"][query]) as heat:
            assert heat.crs == crs and heat.transform == transform and heat.shape == shape
            assert heat.count == 2 and heat.nodata is not None
            assert heat.descriptions == (f"score: {query}", f"cosine similarity: {query}")
            probability, cosine = heat.read(1), heat.read(2)
        assert 0.0 <= probability.min() <= probability.max() <= 1.0
        assert -1.0 <= cosine.min() <= cosine.max() <= 1.0
    regions = gpd.read_file(summary["outputs"]["regions"], layer="regions")
    assert regions.crs == crs and (regions["max_score"] >= 0.5).all()


def test_dense_heatmap_equals_the_same_windows_mapped_in_memory(scene, localized):
    """The job (reader threads, batches, the packed features of the spine, the prescored stitcher, the
    COG) adds nothing to the maps: the same 64 px windows every 48 px, splatted in memory."""
    from geo_dfm.models.contrast import TextContrast
    from geo_dfm.models.dense import PatchHead
    from geo_dfm.models.factory import load_encoder
    from geo_dfm.synthetic.measure import MapMethod, scene_maps

    out, summary = localized
    encoder = load_encoder("toy")
    with rasterio.open(scene.path) as src:
        image = np.moveaxis(src.read(), 0, -1)
    contrast = TextContrast.build(encoder, ("water", "runway"))
    expected = scene_maps(encoder, image, contrast, MapMethod(PatchHead(), chip_size=64, stride=48))
    for index, query in enumerate(("water", "runway")):
        with rasterio.open(summary["outputs"]["heatmaps"][query]) as heat:
            np.testing.assert_allclose(heat.read(1), expected.probability[index], atol=1e-5)
            np.testing.assert_allclose(heat.read(2), expected.cosine[index], atol=1e-5)


def test_dense_summary_names_the_method(localized):
    from geo_dfm.models.contrast import DEFAULT_BACKGROUND
    from geo_dfm.models.dense import DEFAULT_VARIANT

    _, summary = localized
    parameters = summary["parameters"]
    assert parameters["method"] == "dense" and parameters["variant"] == DEFAULT_VARIANT
    assert parameters["score"] == "contrast" and parameters["background"] == list(DEFAULT_BACKGROUND)
    assert parameters["decimate"] == 1 and summary["chips"] == 25  # 5 × 5 windows of 64 px every 48 px


def test_blend_with_contrast_keeps_the_cosine_band(scene, localized, tmp_path):
    """``--score contrast`` changes band 1 of a blend map only: band 2 is the same mean cosine."""
    argv = ["localize", str(scene.path), "water", "--model", "toy", "--decimate", "1"]
    assert main([*argv, "-o", str(tmp_path / "minmax")]) == 0
    assert main([*argv, "-o", str(tmp_path / "contrast"), "--score", "contrast"]) == 0
    with (
        rasterio.open(tmp_path / "minmax" / "water.tif") as a,
        rasterio.open(tmp_path / "contrast" / "water.tif") as b,
    ):
        np.testing.assert_allclose(a.read(2), b.read(2), atol=1e-6)
        stretched, probability = a.read(1), b.read(1)
    assert stretched.min() == 0.0 and stretched.max() == 1.0  # min–max always spans [0, 1]
    assert probability.min() > 0.0 and probability.max() < 1.0
    assert _summary(tmp_path / "contrast")["parameters"]["score"] == "contrast"


def test_dense_class_raster_is_decimated_to_half_a_patch(scene, classified):
    out, summary = classified
    factor = summary["parameters"]["decimate"]
    assert factor == 4  # 64 px windows of 8 × 8 patches: 8 px per patch, 2 output pixels per patch
    labels = LABELS.split(",")
    with rasterio.open(summary["outputs"]["classes"]) as src:
        assert src.crs == scene.crs and src.transform == scene.transform * Affine.scale(factor)
        assert src.shape == (256 // factor, 256 // factor) and src.nodata == 255
        classes = src.read(1)
    with rasterio.open(summary["outputs"]["probabilities"]) as src:
        assert list(src.descriptions) == labels and src.transform == scene.transform * Affine.scale(factor)
        probabilities = src.read()
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probabilities.argmax(axis=0), classes)
    truth = scene.truth[factor // 2 :: factor, factor // 2 :: factor]
    assert (classes == truth).mean() >= 0.5  # a smoke check; quality is measured in docs/dense.md
    pixel_area = (2.0 * factor) ** 2
    for index, label in enumerate(labels):
        assert summary["area_per_class"][label] == pytest.approx((classes == index).sum() * pixel_area)


def test_dense_regions_dissolve_the_class_raster(scene, classified, tmp_path):
    out, summary = classified
    labels = LABELS.split(",")
    regions = gpd.read_file(summary["outputs"]["vectors"], layer="regions")
    chips = gpd.read_file(summary["outputs"]["vectors"], layer="chips")
    assert regions.crs == scene.crs and len(chips) == summary["chips"]
    for label in labels:  # the regions of a class tile exactly its pixels
        assert regions.loc[regions["label"] == label, "area_m2"].sum() == pytest.approx(
            summary["area_per_class"][label]
        )
    assert regions.geometry.area.sum() == pytest.approx(256 * 256 * 4.0)  # every pixel is labelled
    argv = ["classify", str(scene.path), "--labels", LABELS, "-o", str(tmp_path / "mmu"), "--model", "toy"]
    assert main([*argv, "--method", "dense", "--min-region-area", "2000"]) == 0
    kept = gpd.read_file(tmp_path / "mmu" / "labels.gpkg", layer="regions")
    assert (kept["area_m2"] >= 2000).all() and len(kept) == (regions["area_m2"] >= 2000).sum()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["localize", "{scene}", "water", "--variant", "sclip"], "--variant: only applies to --method dense"),
        (["localize", "{scene}", "water", "--cls-lambda", "0.3"], "--cls-lambda: only applies"),
        (["localize", "{scene}", "water", "--background", "forest,town"], "--background: only applies"),
        (["localize", "{scene}", "water", "--method", "selo", "--score", "contrast"], "--score"),
        (["localize", "{scene}", "water", "--method", "dense", "--background", "water"], "--background"),
        (["localize", "{scene}", "water", "--method", "dense", "--input-size", "60"], "8 px patch"),
        (["classify", "{scene}", "--labels", "water,forest", "--min-region-area", "5"], "--min-region-area"),
        (["classify", "{scene}", "--labels", "water,forest", "--input-size", "128"], "--input-size"),
    ],
)
def test_bad_dense_options_are_exit_2_and_write_nothing(scene, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    argv = [a.format(scene=scene.path) for a in args] + ["-o", str(out), "--model", "toy"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and _leftovers(tmp_path) == []
