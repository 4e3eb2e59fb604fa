"""Exact SeLo mean on the compressed grid of window edges vs dense numpy accumulation, side by side.

Windows: the SeLo layout (sizes 256, 512, 768, two passes each) on a synthetic 10 000 × 10 000 scene,
one random score per window. ``selo_mean`` (decimation 8, and full resolution) is timed against the
dense method (``heat[r0:r1, c0:c1] += s; count[...] += 1`` over float64 planes, then ``heat / count``,
the reference's accumulation without its per-pixel Python loop); both results must agree. Also times
streaming the full-resolution map block by block (``SeloMap.iter_blocks``, 1024-pixel blocks, nothing of
scene size in memory) and checks the blocks equal ``selo_mean``.

Targets: results agree; speed-up dense / ``selo_mean`` >= 10 decimated and >= 1.0 at full resolution;
streaming the blocks no slower than 2 × the whole-array ``selo_mean``. Exits non-zero when one is missed.
Usage: ``python benchmarks/selo_mean_speed.py [--size 10000]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from rasterio.windows import Window

from tile_tools.accumulate import selo_mean
from tile_tools.selo_map import SeloMap


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
    blocks_equal = True
    for window, data in SeloMap.from_windows(windows, scores, size, size).iter_blocks(block_size=1024):
        blocks_equal &= bool(np.array_equal(data[0], exact[window.toslices()]))
    t3 = time.perf_counter()
    dense = dense_mean(windows, scores, size, size)
    t4 = time.perf_counter()
    agree = np.allclose(exact, dense, rtol=1e-5)
    t_dec, t_full, t_dense = t1 - t0, t2 - t1, t4 - t3
    # the block loop above also compares every block with the whole array: time the streaming alone
    start = time.perf_counter()
    for _ in SeloMap.from_windows(windows, scores, size, size).iter_blocks(block_size=1024):
        pass
    t_stream = time.perf_counter() - start
    print(f"{size} x {size}, {len(windows)} SeLo windows")
    print(f"selo_mean, decimation 8 ({decimated.shape[1]}x{decimated.shape[0]}): {t_dec:8.3f} s")
    print(f"selo_mean, full resolution:            {t_full:8.3f} s")
    print(
        f"SeloMap.iter_blocks, full resolution:  {t_stream:8.3f} s (blocks equal selo_mean: {blocks_equal})"
    )
    print(f"dense numpy accumulation:              {t_dense:8.3f} s")
    ratios = (t_dense / t_dec, t_dense / t_full, t_stream / t_full)
    print(
        f"speed-up dense / selo_mean: {ratios[0]:.0f}x decimated (target >= 10), {ratios[1]:.1f}x full "
        f"(target >= 1.0); streaming / whole array: {ratios[2]:.2f} (target <= 2.0)"
    )
    print("results agree:", agree)
    ok = agree and blocks_equal and ratios[0] >= 10 and ratios[1] >= 1.0 and ratios[2] <= 2.0
    print("selo_mean_speed:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
