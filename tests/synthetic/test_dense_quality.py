"""Dense (patch-level) maps of the trained toy model against chip-level ``blend`` maps, on held-out scenes.

Scenes: 384 px, patchwork layout, seeds 200-209 (disjoint from the training seeds >= 1 000 000, from the
recipe-selection seeds 12-20, from the dense-variant selection seeds 40-55 and from every other test's
seeds). Maps: chips of 64 px every 32 px, Hann splats, the probability of each query against the default
background vocabulary; dense = the default variant at the model's input size. Truth: the scene's own
class raster; pixel IoU at the true area and ROC AUC (:mod:`geo_dfm.synthetic.measure`).

Measured (``python tests/synthetic/measure_gates.py --only dense``: the trained model, then five random
``geo-dfm-toy`` models, torch seeds 1000-1004):

=========================== ======= =========================== ==========
                            trained random (best of 5)          gate
=========================== ======= =========================== ==========
dense mean IoU (3 queries)  0.838   0.393                       >= 0.75
dense forest / runway IoU   0.813 / 0.811   0.033 / 0.409       >= 0.70
dense water IoU             0.890   0.769 (random colour
                                    features find dark water)   (in the mean)
dense − blend runway IoU    +0.099  +0.407 (random1: dense      >= +0.05
                                    0.409, blend 0.002)
=========================== ======= =========================== ==========

(blend, trained: water 0.817, forest 0.701, runway 0.713, mean 0.743.) The margin over blend alone is
no quality gate (a random model whose blend map misses the runway clears it); every random model fails
the absolute gates above (its best dense mean IoU is 0.393, its best forest IoU 0.033). Measured again
2026-12-02 by the script: the same numbers to the third decimal.

Contrast: on scenes drawn without a runway (seeds 210-212, the other five classes), the "runway" map's
maximum stays below the largest maximum of the present classes' maps on every scene, for dense and for
blend (measured: dense 0.66 / 0.92 / 0.92 vs 0.99 / 0.99 / 0.99; blend 0.10 / 0.01 / 0.02 vs 0.99 / 0.98 /
0.98). Not every class passes with the toy model: docs/dense.md has the whole table (an absent "bare
soil" peaks at 0.99 on farmland furrows, with dense and almost with blend).
"""

from __future__ import annotations

import numpy as np
import pytest

DENSE_SEEDS = tuple(range(200, 210))
ABSENT_SEEDS = (210, 211, 212)
QUERIES = ("water", "forest", "runway")
WITHOUT_RUNWAY = ("water", "forest", "farmland", "town", "bare soil")


def _methods():
    from geo_dfm.models.dense import PatchHead
    from geo_dfm.synthetic.measure import MapMethod

    return {"dense": MapMethod(PatchHead()), "blend": MapMethod()}


def measure_dense_and_blend(weights=None) -> dict[str, float]:
    """Mean pixel IoU and ROC AUC per query, dense and blend, on :data:`DENSE_SEEDS`."""
    from geo_dfm.models.contrast import TextContrast
    from geo_dfm.models.factory import load_encoder
    from geo_dfm.synthetic.measure import measure_maps

    encoder = load_encoder("toy", weights=weights)
    contrast = TextContrast.build(encoder, QUERIES)
    numbers: dict[str, float] = {}
    for kind, method in _methods().items():
        for query, quality in measure_maps(encoder, contrast, method, DENSE_SEEDS).items():
            numbers[f"{kind}_{query}_iou"] = quality.mean_iou
            numbers[f"{kind}_{query}_auc"] = quality.mean_auc
        numbers[f"{kind}_mean_iou"] = float(np.mean([numbers[f"{kind}_{q}_iou"] for q in QUERIES]))
    return numbers


@pytest.fixture(scope="module")
def numbers(toy_model_path):
    return measure_dense_and_blend(toy_model_path)


@pytest.mark.slow
def test_dense_maps_find_water_forest_and_runway(numbers):
    assert numbers["dense_mean_iou"] >= 0.75, numbers
    assert numbers["dense_forest_iou"] >= 0.70, numbers
    assert numbers["dense_runway_iou"] >= 0.70, numbers


@pytest.mark.slow
def test_dense_outlines_the_thin_runway_better_than_blend(numbers):
    assert numbers["dense_runway_iou"] >= numbers["blend_runway_iou"] + 0.05, numbers


@pytest.mark.slow
def test_a_query_absent_from_the_scene_stays_below_the_present_ones(toy_model_path):
    from geo_dfm.models.contrast import TextContrast
    from geo_dfm.models.factory import load_encoder
    from geo_dfm.synthetic.measure import measure_maps

    encoder = load_encoder("toy", weights=toy_model_path)
    contrast = TextContrast.build(encoder, ("runway", *WITHOUT_RUNWAY))
    for kind, method in _methods().items():
        absent, present = [], []
        for seed in ABSENT_SEEDS:
            quality = measure_maps(encoder, contrast, method, (seed,), classes=WITHOUT_RUNWAY)
            absent += quality["runway"].absent_max
            present.append(max(m for name, q in quality.items() if name != "runway" for m in q.present_max))
        assert len(absent) == len(ABSENT_SEEDS)
        assert (np.array(absent) < present).all(), f"{kind}: runway max {absent}, present max {present}"
