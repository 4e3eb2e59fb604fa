"""Where the toy model's quality gates sit: the trained model beside several random (untrained) ones.

Run as a script: ``python tests/synthetic/measure_gates.py [--random 5] [--only NAME ...]``. For every
gate of the suite it prints the trained model's number and each random model's on the gate's own
held-out seeds, so a gate can be set well above the best random model and close below the trained
one (issue 19). Random models are ``geo-dfm-toy`` initialised from torch seeds 1000, 1001, ...
(logit scale fixed as in the recipe), loaded through the ordinary ``--weights`` path.

Seeds in use: training >= TRAINING_SEED_START (1 000 000); recipe selection 12-20; dense-variant
selection 40-55; gates: toy model 300-303, localize 400, classify 500-505, dense 200-209.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLASSES = "water,forest,farmland,town,bare soil,runway"
TOY_MODEL_SEEDS = (300, 301, 302, 303)  # as in test_toy_model.test_toy_model_knows_the_synthetic_world


def toy_model_gate(weights: Path, work: Path) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    from test_toy_model import measure

    return measure(weights, seeds=TOY_MODEL_SEEDS)


def localize_gate(weights: Path, work: Path, seeds=(400, 401, 402, 403)) -> dict[str, float]:
    import rasterio

    from geo_dfm.cli.main import main
    from geo_dfm.synthetic import make_scene
    from geo_dfm.synthetic.measure import iou_of_top_area

    ious = []
    for seed in seeds:
        scene = make_scene(work / f"loc{seed}.tif", width=384, height=384, gsd=2.0, seed=seed)
        out = work / f"loc{seed}-{weights.stem}"
        argv = [
            "localize",
            str(scene.path),
            "water",
            "forest",
            "-o",
            str(out),
            "--model",
            "toy",
            "--decimate",
            "1",
        ]
        assert main([*argv, "--weights", str(weights)]) == 0
        with rasterio.open(out / "water.tif") as src:
            ious.append(iou_of_top_area(src.read(1), scene.mask("water")))
    return {
        "water_iou": float(np.mean(ious)),
        **{f"water_iou_{s}": v for s, v in zip(seeds, ious, strict=True)},
    }


def classify_gate(
    weights: Path, work: Path, seeds=(500, 501, 502, 503, 504, 505), method: str = "blend"
) -> dict[str, float]:
    import rasterio

    sys.path.insert(0, str(HERE.parent / "cli"))
    from test_cli_classify import chip_accuracy

    from geo_dfm.cli.main import main
    from geo_dfm.synthetic import make_scene

    correct = total = 0
    pixel = []
    for seed in seeds:
        scene = make_scene(work / f"cls{seed}.tif", width=384, height=384, gsd=2.0, seed=seed)
        out = work / f"cls{seed}-{weights.stem}-{method}"
        argv = ["classify", str(scene.path), "--labels", CLASSES, "-o", str(out), "--model", "toy"]
        assert main([*argv, "--weights", str(weights), "--method", method, "--decimate", "1"]) == 0
        ok, n = chip_accuracy(scene, out / "labels.gpkg")
        correct, total = correct + ok, total + n
        with rasterio.open(out / "classes.tif") as src:
            pixel.append(float((src.read(1) == scene.truth).mean()))
    return {"chip_accuracy": correct / total, "chips": total, "pixel_accuracy_first": pixel[0],
            "pixel_accuracy_mean": float(np.mean(pixel))}  # fmt: skip


def classify_dense_gate(weights: Path, work: Path) -> dict[str, float]:
    """The classify gate's scenes, per-pixel classes from ``--method dense`` (for docs/dense.md)."""
    return classify_gate(weights, work, method="dense")


def dense_gate(weights: Path, work: Path) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    from test_dense_quality import measure_dense_and_blend

    return measure_dense_and_blend(weights)


GATES = {
    "toy_model": toy_model_gate,
    "localize": localize_gate,
    "classify": classify_gate,
    "classify_dense": classify_dense_gate,
    "dense": dense_gate,
}


def main() -> None:
    import torch

    from geo_dfm.synthetic import ensure_toy_model
    from geo_dfm.synthetic.measure import write_random_toy_weights

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--random", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=list(GATES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = {"trained": ensure_toy_model()}
        for index in range(args.random):
            models[f"random{index}"] = write_random_toy_weights(
                work / f"random{index}.safetensors", 1000 + index
            )
        for gate in args.only:
            for name, weights in models.items():
                numbers = GATES[gate](weights, work)
                print(
                    json.dumps({"gate": gate, "model": name, **{k: round(v, 4) for k, v in numbers.items()}})
                )
                sys.stdout.flush()


if __name__ == "__main__":
    main()
