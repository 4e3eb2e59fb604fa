"""Job overhead on the CPU with ViT-B-32 (random weights): end-to-end throughput vs the bare model.

In one process, same batch size and threads: the bare model encodes the chips of a 1 792² scene
(64 chips of 224 px, read beforehand) batch by batch; end to end, ``localize`` and ``classify`` run on
the same scene (reading, preprocessing, scoring, stitching, writing every output). The model is loaded
once first (the factory keeps it), and classify's class embeddings are warm (on-disk cache), so both
measure the job's own overhead. Also printed, not judged: a fresh ``geo-dfm localize`` process
(imports + model load + job).

Target (exit 1 when missed): model-only time / end-to-end time ≥ 0.90 for both jobs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _support import best_of, random_vit_b32

TARGET = 0.90
SIZE = 1792
BATCH = 32


def main() -> int:
    import torch

    from geo_dfm.jobs.classify import ClassifyParams, run_classify
    from geo_dfm.jobs.localize import LocalizeParams, run_localize
    from geo_dfm.jobs.params import ChipParams, ModelParams
    from geo_dfm.jobs.pipeline import load_job_encoder, open_chip_plan
    from geo_dfm.progress import Progress
    from geo_dfm.synthetic import make_scene

    failed = False
    with tempfile.TemporaryDirectory(prefix="geo-dfm-overhead-") as tmp:
        folder = Path(tmp)
        weights = random_vit_b32(folder)
        scene = make_scene(folder / "scene.tif", width=SIZE, height=SIZE, gsd=1.0, seed=5).path
        model = ModelParams(name="ViT-B-32-quickgelu", weights=str(weights), batch_size=BATCH)
        chips = ChipParams(overlap="0")
        encoder = load_job_encoder(model)
        with open_chip_plan(str(scene), chips, encoder.input_size) as plan:
            images = [plan.reader.read_chip(w).image for w in plan.windows]
        count = len(images)

        def model_only() -> None:
            for start in range(0, count, BATCH):
                encoder.encode_images(images[start : start + BATCH], batch_size=BATCH)

        def localize() -> None:
            out = folder / f"localize-{time.monotonic_ns()}"
            run_localize(
                LocalizeParams(str(scene), ("water", "forest"), str(out), chips=chips, model=model),
                Progress(),
            )

        def classify() -> None:
            out = folder / f"classify-{time.monotonic_ns()}"
            run_classify(
                ClassifyParams(str(scene), str(out), preset="landcover", chips=chips, model=model), Progress()
            )

        classify()  # warms the class-embedding cache
        bare = best_of(2, model_only)
        print(f"ViT-B-32 on CPU ({torch.get_num_threads()} threads), {count} chips, batch {BATCH}")
        print(f"  model only     {bare:7.2f} s  ({count / bare:6.1f} chips/s)")
        for name, job in (("localize", localize), ("classify", classify)):
            e2e = best_of(2, job)
            ratio = bare / e2e
            ok = ratio >= TARGET
            failed |= not ok
            print(
                f"  {name:<14} {e2e:7.2f} s  ({count / e2e:6.1f} chips/s)  ratio {ratio:.3f} (target ≥ {TARGET}) {'ok' if ok else 'MISSED'}"
            )
        geo_dfm = Path(sys.executable).parent / "geo-dfm"
        argv = [
            str(geo_dfm),
            "localize",
            str(scene),
            "water",
            "-o",
            str(folder / "cli"),
            "--overlap",
            "0",
            "--model",
            "ViT-B-32-quickgelu",
            "--weights",
            str(weights),
            "--progress",
            "none",
        ]
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        print(f"  fresh CLI process (imports + model load + localize): {time.perf_counter() - start:.2f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
