"""Model loading and preprocessing speed, geo-dfm vs the open_clip way, side by side.

1. Loading a ViT-B-32-quickgelu checkpoint: ``open_clip.create_model(arch, pretrained=file)`` (random
   initialisation, then load) vs geo-dfm's ``instantiate`` (meta-device build, checkpoint tensors
   assigned, strict). Target: geo-dfm at least 1.5× faster.
2. Preprocessing 64 chips: open_clip's eval transform per PIL image + ``torch.stack`` vs
   ``Encoder.preprocess`` (identical output, checked here too). Target: not slower (≥ 1.0×) for
   chips already at the input size, and for 300×300 chips that need resizing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

from geo_dfm.models.checkpoints import read_checkpoint
from geo_dfm.models.encoder import Encoder
from geo_dfm.models.factory import build_model, instantiate
from geo_dfm.models.registry import get_model_spec

ARCH = "ViT-B-32-quickgelu"


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = build_model(ARCH).eval()
        path = Path(tmp) / "b32.pt"
        torch.save(model.state_dict(), path)
        t_open_clip = best_of(2, lambda: open_clip.create_model(ARCH, pretrained=str(path)))
        t_geo = best_of(2, lambda: instantiate(ARCH, read_checkpoint(path), path))
        ratio = t_open_clip / t_geo
        print(
            f"load {ARCH}: open_clip {t_open_clip:.2f} s, geo-dfm {t_geo:.2f} s, ratio {ratio:.1f}x (target >= 1.5)"
        )
        ok &= ratio >= 1.5

        encoder = Encoder(
            model, open_clip.get_tokenizer(ARCH), get_model_spec("georsclip-vit-b-32"), torch.device("cpu")
        )
        transform = open_clip.image_transform(224, is_train=False)
        rng = np.random.default_rng(0)
        for size in (224, 300):
            chips = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(64)]
            reference = lambda chips=chips: torch.stack([transform(Image.fromarray(c)) for c in chips])  # noqa: E731
            ours = lambda chips=chips: encoder.preprocess(chips)  # noqa: E731
            assert torch.equal(reference(), ours())
            t_ref, t_ours = best_of(3, reference), best_of(3, ours)
            ratio = t_ref / t_ours
            print(
                f"preprocess 64 chips {size}px: open_clip {t_ref * 1000:.0f} ms, geo-dfm {t_ours * 1000:.0f} ms, "
                f"ratio {ratio:.1f}x (target >= 1.0)"
            )
            ok &= ratio >= 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
