"""Dense vs chip-level maps of the trained toy model on the synthetic world (numbers of docs/dense.md).

Run as a script: ``python tests/synthetic/measure_dense.py [--seeds 40-55] [--weights FILE]``. It prints,
per map method (blend and every dense variant, at the model's input size and at twice it), the mean
pixel IoU and ROC AUC of the water, forest and runway probability maps over fresh scenes, then each
dense variant at the model's input size with SegEarth-OV's CLS subtraction (``--cls-lambdas``). Seeds
40-55 chose the default variant; the tests use other seeds (see tests/synthetic/test_dense_quality.py).

``--absent`` prints the contrast table instead: for each synthetic class, scenes drawn without it
(seeds 210-212), the maximum of its map beside the largest maximum of the present classes' maps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def parse_seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def absent_table(encoder, seeds: list[int]) -> None:
    """Per class: its map's maximum on scenes without it vs the present classes' largest maximum."""
    from geo_dfm.models.contrast import TextContrast
    from geo_dfm.models.dense import PatchHead
    from geo_dfm.synthetic.classes import CLASS_NAMES
    from geo_dfm.synthetic.measure import MapMethod, measure_maps

    print(f"absent class: max of its map / largest present max, seeds {seeds}")
    for absent in CLASS_NAMES:
        present = tuple(name for name in CLASS_NAMES if name != absent)
        contrast = TextContrast.build(encoder, (absent, *present))
        cells = []
        for method in (MapMethod(PatchHead()), MapMethod()):
            pairs = []
            for seed in seeds:
                quality = measure_maps(encoder, contrast, method, (seed,), classes=present)
                top = max(m for name, q in quality.items() if name != absent for m in q.present_max)
                pairs.append(f"{quality[absent].absent_max[0]:.2f}/{top:.2f}")
            cells.append(f"{method.name}: " + " ".join(pairs))
        print(f"{absent:<12}" + "   ".join(cells), flush=True)


def main() -> None:
    import torch

    from geo_dfm.models.contrast import TextContrast
    from geo_dfm.models.dense import DENSE_VARIANTS, PatchHead
    from geo_dfm.models.factory import load_encoder
    from geo_dfm.synthetic.measure import MapMethod, measure_maps

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="40-55")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--queries", default="water,forest,runway")
    parser.add_argument("--input-sizes", default="64,128")
    parser.add_argument("--cls-lambdas", default="0.3", help="comma-separated; empty for none")
    parser.add_argument("--absent", action="store_true", help="the contrast table (seeds 210-212)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    encoder = load_encoder("toy", weights=args.weights)
    if args.absent:
        absent_table(encoder, [210, 211, 212])
        return
    queries = args.queries.split(",")
    contrast = TextContrast.build(encoder, queries)
    seeds = parse_seeds(args.seeds)
    runs = [(MapMethod(), contrast)]
    for size in (int(s) for s in args.input_sizes.split(",")):
        runs += [(MapMethod(PatchHead(variant, input_size=size)), contrast) for variant in DENSE_VARIANTS]
    for cls_lambda in (float(x) for x in args.cls_lambdas.split(",") if x):
        subtracted = TextContrast.build(encoder, queries, cls_lambda=cls_lambda)
        runs += [(MapMethod(PatchHead(variant)), subtracted) for variant in DENSE_VARIANTS]
    print(f"{len(seeds)} scenes (seeds {args.seeds}), 384 px, chips 64 px every 32 px, Hann splats")
    print(
        f"{'method':<22}{'input':>6}{'λ':>5}"
        + "".join(f"{q + ' IoU/AUC':>22}" for q in contrast.names)
        + f"{'mean IoU':>10}{'s':>6}"
    )
    for method, scores in runs:
        started = time.perf_counter()
        quality = measure_maps(encoder, scores, method, seeds)
        size = (method.head.input_size if method.head else None) or encoder.input_size
        cells = "".join(f"{q.mean_iou:>13.3f} / {q.mean_auc:.3f}" for q in quality.values())
        mean = np.mean([q.mean_iou for q in quality.values()])
        row = f"{method.name:<22}{size:>6}{scores.cls_lambda:>5.1f}{cells}{mean:>10.3f}"
        print(f"{row}{time.perf_counter() - started:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
