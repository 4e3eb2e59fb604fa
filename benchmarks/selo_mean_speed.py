"""Exact SeLo mean on the compressed grid of window edges vs dense numpy accumulation, side by side.

Windows: the SeLo layout (sizes 256, 512, 768, two passes each) on a synthetic 10 000 × 10 000 scene,
one random score per window. ``selo_mean`` (decimation 8, and full resolution) is timed against the
dense method (``heat[r0:r1, c0:c1] += s; count[...] += 1`` over float64 planes, then ``heat / count``,
the reference's accumulation without its per-pixel Python loop); both results must agree.
Usage: ``python benchmarks/selo_mean_speed.py [--size 10000]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from rasterio.windows import Window

from tile_tools.accumulate import selo_mean


def selo_layout(height: int, width: int, sizes: tuple[int, ...] = (256, 512, 768)) -> list[Window]:
    spans = set()
    for s in sizes:
        for off in (0, s // 2):
            for c in range(off, width, s):
                c0 = c if c + s < width else width - s
                for r in range(off, height, s):
                    r0 = r if r + s < height else height - s
                    spans.add((r0, c0, s))
    return [Window(c, r, s, s) for r, c, s in sorted(spans)]


def dense_mean(windows: list[Window], scores: np.ndarray, height: int, width: int) -> np.ndarray:
    heat = np.zeros((height, width))
    count = np.zeros((height, width))
    for window, score in zip(windows, scores, strict=True):
        rows, cols = window.toslices()
        heat[rows, cols] += score
        count[rows, cols] += 1
    return (heat / count).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    size = parser.parse_args().size
    windows = selo_layout(size, size)
    scores = np.random.default_rng(0).random(len(windows))
    t0 = time.perf_counter()
    decimated = selo_mean(windows, scores, size, size, decimation=8)
    t1 = time.perf_counter()
    exact = selo_mean(windows, scores, size, size)
    t2 = time.perf_counter()
    dense = dense_mean(windows, scores, size, size)
    t3 = time.perf_counter()
    agree = np.allclose(exact, dense, rtol=1e-5)
    print(f"{size} x {size}, {len(windows)} SeLo windows")
    print(f"selo_mean, decimation 8 ({decimated.shape[1]}x{decimated.shape[0]}): {t1 - t0:8.3f} s")
    print(f"selo_mean, full resolution:            {t2 - t1:8.3f} s")
    print(f"dense numpy accumulation:              {t3 - t2:8.3f} s")
    print(
        f"speed-up dense / selo_mean: {(t3 - t2) / (t1 - t0):.0f}x (decimated), {(t3 - t2) / (t2 - t1):.1f}x (full)"
    )
    print("results agree:", agree)
    print("selo_mean_speed:", "PASS" if agree and (t2 - t1) < (t3 - t2) else "FAIL")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
