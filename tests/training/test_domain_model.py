"""A domain model from the user's own map: the toy CLIP learns a class name it never saw.

The user's land-cover map calls bare soil "quarry", a word the toy model never met in training
(its CLIP token is absent from every toy caption), so zero-shot "quarry" chips are mostly mistaken
for other classes. ``geo-dfm pairs`` turns one labelled synthetic scene (labels in EPSG:4326, the
scene in UTM) into captioned chips; ``geo-dfm finetune --method lora`` trains on them; zero-shot
accuracy is then measured with the evaluation code on held-out chips of *other* synthetic scenes.

Measured on this machine (seed 31 training scene, held-out seeds 41-44, 164 pure 64 px chips, 21 of
them quarry): quarry 14.3 % → 100 %, all classes 89.0 % → 96.3 %.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image

from geo_dfm.cli.main import main
from geo_dfm.synthetic import CLASS_NAMES, make_scene, render_scene

RENAMED = {"bare soil": "quarry"}
NAMES = [RENAMED.get(name, name) for name in CLASS_NAMES]
HELD_OUT_SEEDS = (41, 42, 43, 44)
TRAIN_SEED = 31


def held_out_folder(root, seeds=HELD_OUT_SEEDS, size=384, chip=64):
    """ImageFolder of 64 px chips (stride 32) with ≥ 95 % of one class, from scenes never trained on."""
    for seed in seeds:
        scene = render_scene(size, size, seed, layout="patchwork")
        for row in range(0, size - chip + 1, chip // 2):
            for col in range(0, size - chip + 1, chip // 2):
                counts = np.bincount(scene.truth[row : row + chip, col : col + chip].ravel(), minlength=256)[
                    :6
                ]
                if counts.max() < 0.95 * chip * chip:
                    continue
                folder = root / NAMES[int(counts.argmax())]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(scene.image[row : row + chip, col : col + chip]).save(
                    folder / f"{seed}_{row}_{col}.png"
                )
    return root


def accuracy(encoder, root) -> tuple[float, float]:
    """(all classes, quarry) zero-shot top-1 % through the evaluation command's code."""
    from geo_dfm.evaluation.zeroshot import evaluate_zeroshot

    result = evaluate_zeroshot(encoder, root)
    return float(result.top1), float(result.per_class[list(result.classnames).index("quarry")])


@pytest.mark.slow
def test_lora_on_pairs_from_map_labels_teaches_the_toy_model_a_new_class_name(toy_model_path, tmp_path):
    from geo_dfm.models.factory import load_encoder

    scene = make_scene(tmp_path / "region.tif", width=384, height=384, gsd=2.0, seed=TRAIN_SEED)
    labels = gpd.read_file(scene.truth_path)
    labels["landcover"] = labels["class_name"].replace(RENAMED)
    labels.to_crs("EPSG:4326").to_file(tmp_path / "landcover.gpkg")
    pairs = tmp_path / "pairs"
    assert main(
        ["pairs", str(scene.path), str(tmp_path / "landcover.gpkg"), "--label-field", "landcover", "-o", str(pairs),
         "--scales", "32,64", "--overlap", "0.5", "--min-coverage", "0.8", "--max-per-class", "100"]
    ) == 0  # fmt: skip
    counts = json.loads((pairs / "summary.json").read_text())["class_counts"]
    assert counts["quarry"] >= 50 and set(counts) == set(NAMES)

    held_out = held_out_folder(tmp_path / "held_out")
    assert len(list((held_out / "quarry").iterdir())) >= 15
    base_all, base_quarry = accuracy(load_encoder(model="toy"), held_out)
    out = tmp_path / "regional-lora"
    assert main(
        ["finetune", "--pairs", str(pairs / "pairs.csv"), "--model", "toy", "-o", str(out), "--method", "lora",
         "--steps", "40", "--batch-size", "48", "--lr", "1e-3", "--warmup-steps", "5", "--device", "cpu",
         "--val-dir", str(held_out), "--validate-every", "40"]
    ) == 0  # fmt: skip
    tuned_all, tuned_quarry = accuracy(load_encoder(model="toy", adapter=str(out)), held_out)
    print(f"quarry {base_quarry:.1f} -> {tuned_quarry:.1f}, all {base_all:.1f} -> {tuned_all:.1f}")
    assert base_quarry < 50
    assert tuned_quarry >= base_quarry + 25 and tuned_quarry > 80
    assert tuned_all > 80 and tuned_all >= base_all
    # validation during training scored the same model on the same folder (unmerged vs merged adapter)
    validation = json.loads((out / "summary.json").read_text())["validations"][-1]
    assert validation["step"] == 40
    assert validation["zeroshot_top1"] == pytest.approx(tuned_all, abs=100 / 164 + 1e-9)
