"""Class embeddings persist: ``classify --preset landcover`` with ViT-B-32 (random weights), text-encoding
time of a first run (11 labels × 105 templates, trimmed token batches) vs a second run in a new process
(class embeddings read from the on-disk cache), and the first run's trimmed vs padded (77-token) encoding.

Targets (exit 1 when missed): the second run encodes 0 prompts and spends ≤ 5 % of the first run's
text time; trimmed batches are faster than padded ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _support import random_vit_b32, timed

RUNNER = r"""
import json, sys
from geo_dfm.jobs.classify import ClassifyParams, run_classify
from geo_dfm.jobs.params import ChipParams, ModelParams
from geo_dfm.jobs.pipeline import load_job_encoder
from geo_dfm.progress import Progress
scene, out, weights = sys.argv[1:4]
model = ModelParams(name="ViT-B-32-quickgelu", weights=weights)
summary = run_classify(ClassifyParams(scene, out, preset="landcover", chips=ChipParams(overlap="0"), model=model), Progress())
print(json.dumps({"text": summary["timings"]["encode labels"], "prompts": load_job_encoder(model).text_tokens_encoded}))
"""


def run(scene: Path, out: Path, weights: Path, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(scene), str(out), str(weights)],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    import torch

    from geo_dfm.models.encoder import _encode_text_trimmed, token_lengths
    from geo_dfm.models.factory import load_encoder
    from geo_dfm.models.presets import get_label_preset
    from geo_dfm.models.prompts import fill_templates, get_templates
    from geo_dfm.synthetic import make_scene

    with tempfile.TemporaryDirectory(prefix="geo-dfm-text-") as tmp:
        folder = Path(tmp)
        weights = random_vit_b32(folder)
        scene = make_scene(folder / "scene.tif", width=448, height=448, gsd=1.0, seed=5).path
        env = dict(os.environ, GEO_DFM_CACHE=str(folder / "cache"))
        (folder / "cache").mkdir()
        first = run(scene, folder / "first", weights, env)
        second = run(scene, folder / "second", weights, env)
        encoder = load_encoder("ViT-B-32-quickgelu", weights=str(weights))
        prompts = [
            p
            for label in get_label_preset("landcover")
            for p in fill_templates(label, get_templates("rs105"))
        ]
        tokens = encoder.tokenizer(prompts)
        length = int(token_lengths(tokens).max())
        with torch.inference_mode():
            padded, _ = timed(
                lambda: [encoder.model.encode_text(tokens[i : i + 256]) for i in range(0, len(tokens), 256)]
            )
            trimmed, _ = timed(
                lambda: [
                    _encode_text_trimmed(encoder.model, tokens[i : i + 256, :length])
                    for i in range(0, len(tokens), 256)
                ]
            )
    print(f"classify --preset landcover, ViT-B-32 CPU: {len(prompts)} prompts, longest {length} of 77 tokens")
    print(f"  first run:  text {first['text']:.2f} s, {first['prompts']} prompts encoded")
    print(f"  second run: text {second['text']:.3f} s, {second['prompts']} prompts encoded (disk cache)")
    print(
        f"  padded 77 tokens {padded:.2f} s vs trimmed to {length}: {trimmed:.2f} s ({padded / trimmed:.1f}×)"
    )
    ok = second["prompts"] == 0 and second["text"] <= 0.05 * first["text"] and trimmed < padded
    print("targets: second run 0 prompts and ≤ 5 % of the first; trimmed faster:", "ok" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
