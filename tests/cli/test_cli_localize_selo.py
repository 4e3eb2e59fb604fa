"""`geo-dfm localize --method selo` equals a straightforward reimplementation of the reference loop.

The reference (SemanticLocalizationMetrics ``predict/generate_selo.py``, as described in
../shared/specs/selo.md §1) is written out here plainly: a per-window Python loop, per-pixel
accumulation, min–max, uint8 truncation and a 251×251 median with replicated border; only the
encoder (the toy model) is shared with the code under test.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from geo_dfm.cli.main import main


def reference_windows(height: int, width: int, sizes) -> list[tuple[int, int, int, int]]:
    windows = []
    for s in sizes:
        for off in (0, s // 2):
            for c in range(off, width, s):
                c0 = c if c + s < width else width - s
                for r in range(off, height, s):
                    r0 = r if r + s < height else height - s
                    if (r0, r0 + s, c0, c0 + s) not in windows:
                        windows.append((r0, r0 + s, c0, c0 + s))
    return windows


def jpeg(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


def median_replicated(g: np.ndarray, size: int) -> np.ndarray:
    """Median of each size×size neighbourhood, border replicated: count pixels ≤ v per window."""
    half = size // 2
    padded = np.pad(g, half, mode="edge").astype(np.int64)
    need = size * size // 2 + 1
    out = np.full(g.shape, 255, dtype=np.uint8)
    decided = np.zeros(g.shape, dtype=bool)
    for v in np.unique(g):
        below = (padded <= v).astype(np.int64)
        integral = np.pad(below.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        counts = (
            integral[size:, size:]
            - integral[:-size, size:]
            - integral[size:, :-size]
            + integral[:-size, :-size]
        )
        now = (counts >= need) & ~decided
        out[now] = v
        decided |= now
    return out


def reference_selo(image: np.ndarray, caption: str, encoder, sizes, exact: bool):
    height, width = image.shape[:2]
    text = encoder.encode_texts([caption])[0]
    heat = np.zeros((height, width))
    count = np.zeros((height, width))
    for r0, r1, c0, c1 in reference_windows(height, width, sizes):
        crop = image[r0:r1, c0:c1]
        if exact:
            crop = jpeg(crop)
        crop = np.asarray(Image.fromarray(crop).resize((256, 256), Image.BICUBIC))
        score = float(encoder.encode_images([crop])[0] @ text)
        for r in range(r0, r1):  # the reference's per-pixel accumulation, row by row
            heat[r, c0:c1] += score
            count[r, c0:c1] += 1
    heat /= count
    p = (heat - heat.min()) / (heat.max() - heat.min())
    g = (255 * p).astype(np.uint8)
    g = median_replicated(g, 251)
    if exact:
        g = jpeg(g)
    return g, heat


@pytest.mark.parametrize("exact", [False, True])
def test_selo_equals_the_reference_loop(tmp_path, toy_model_path, exact):
    from geo_dfm.models.factory import load_encoder
    from geo_dfm.synthetic import make_scene

    scene = make_scene(tmp_path / "scene.tif", width=320, height=288, gsd=2.0, seed=5)
    sizes = (96, 160)
    out = tmp_path / "selo"
    argv = ["localize", str(scene.path), "a calm lake", "-o", str(out), "--model", "toy", "--method", "selo"]
    argv += ["--scales", ",".join(map(str, sizes))]
    assert main([*argv, "--exact"] if exact else argv) == 0

    with rasterio.open(scene.path) as src:
        image = src.read().transpose(1, 2, 0)
    g, heat = reference_selo(image, "a calm lake", load_encoder("toy"), sizes, exact)

    summary = json.loads((out / "summary.json").read_text())
    with rasterio.open(summary["outputs"]["heatmaps"]["a calm lake"]) as src:
        band1, band2 = src.read(1), src.read(2)
        assert src.crs == scene.crs and src.transform == scene.transform
    np.testing.assert_array_equal(np.rint(band1 * 255).astype(np.uint8), g)
    np.testing.assert_allclose(band2, heat, atol=1e-5)
    assert summary["chips"] == len(reference_windows(288, 320, sizes))


def test_selo_default_windows_on_a_small_scene(tmp_path, toy_model_path):
    """Default sizes 256/512/768 on a 300 px scene: only 256 fits (larger sizes are skipped)."""
    from geo_dfm.synthetic import make_scene

    scene = make_scene(tmp_path / "scene.tif", width=300, height=300, gsd=2.0, seed=6)
    out = tmp_path / "selo"
    assert (
        main(["localize", str(scene.path), "water", "-o", str(out), "--model", "toy", "--method", "selo"])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chips"] == len(reference_windows(300, 300, (256,)))
